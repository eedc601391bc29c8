from __future__ import annotations

import hashlib
import hmac
import secrets

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiKey, User
from apps.common.errors import DomainError

API_KEY_PREFIX = "ocpa_"


def secret_hash(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API key, postback token). Salting adds nothing here."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, expected_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), expected_hash)


@transaction.atomic
def api_key_create(*, user: User, name: str, key: str | None = None) -> tuple[ApiKey, str]:
    """Create an API key and return it with the plain key, which is never stored."""
    plain = key or API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        user=user, name=name, prefix=plain[: len(API_KEY_PREFIX) + 6], key_hash=secret_hash(plain)
    )
    return api_key, plain


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


ADVERTISER_GROUP = "Advertiser users"
# What an advertiser user may do in the admin; querysets are scoped to its own advertiser.
ADVERTISER_PERMISSIONS = [
    ("offers", "offer", ("view", "add", "change")),
    ("offers", "goal", ("view", "add", "change", "delete")),
    ("offers", "offercap", ("view", "add", "change", "delete")),
    ("conversions", "conversion", ("view",)),
]


@transaction.atomic
def advertiser_user_create(*, username: str, password: str, advertiser_id: int) -> User:
    """An advertiser's login for the shared admin, limited to its own offers and conversions."""
    group, _ = Group.objects.get_or_create(name=ADVERTISER_GROUP)
    for app_label, model, actions in ADVERTISER_PERMISSIONS:
        for action in actions:
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=f"{action}_{model}"
                )
            )
    user, created = User.objects.select_for_update().get_or_create(username=username)
    if not created and (
        user.is_superuser
        or user.affiliate_id is not None
        or user.advertiser_id not in (None, advertiser_id)
    ):
        # Never turn someone else's login (a superuser, an affiliate, another advertiser's user)
        # into this advertiser's: that would hand it their account or take away their powers.
        raise DomainError("username_taken", f"{username!r} already belongs to another account.")
    user.is_staff = True
    user.is_superuser = False
    user.advertiser_id = advertiser_id
    user.set_password(password)
    user.save()
    user.groups.add(group)
    return user
