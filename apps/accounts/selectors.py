from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import ApiKey, User
from apps.accounts.services import secret_hash

# last_used_at is refreshed at most this often, so an API client does not cost a write per call.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def user_for_api_key(*, key: str) -> User | None:
    """The active user behind a live API key, or None. Notes when the key was last used."""
    if not key or len(key) > 200:
        return None
    api_key = (
        ApiKey.objects.select_related("user", "user__affiliate", "user__advertiser")
        .filter(key_hash=secret_hash(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return api_key.user
