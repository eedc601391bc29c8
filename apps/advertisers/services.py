from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.services import secret_hash
from apps.advertisers.models import Advertiser
from apps.common.crypto import secret_encrypt

SIGNING_SECRET_PREFIX = "whsec_"  # noqa: S105  # a marker, not a secret
# The longest a replaced signing secret may stay valid after a rotation.
SIGNING_SECRET_MAX_OVERLAP_HOURS = 24 * 14

_SECRET_FIELDS = [
    "signing_secret_encrypted",
    "signing_secret_prefix",
    "signing_secret_rotated_at",
    "previous_signing_secret_encrypted",
    "previous_signing_secret_prefix",
    "previous_signing_secret_expires_at",
]


def advertiser_rotate_postback_token(*, advertiser: Advertiser, token: str | None = None) -> str:
    """Give the advertiser a new postback token; returns it (the only time it is visible)."""
    plain = token or secrets.token_urlsafe(24)
    advertiser.postback_token_hash = secret_hash(plain)
    advertiser.postback_token_prefix = plain[:6]
    advertiser.save(update_fields=["postback_token_hash", "postback_token_prefix"])
    return plain


@dataclass(frozen=True)
class SigningSecretRotated:
    """The new secret (shown this once) and until when the one it replaced still works."""

    secret: str
    previous_valid_until: datetime | None
    advertiser: Advertiser


@transaction.atomic
def advertiser_signing_secret_rotate(
    *, advertiser_id: int, now: datetime, overlap_hours: int | None = None
) -> SigningSecretRotated:
    """Give the advertiser a new HMAC signing secret.

    Stored encrypted, not hashed: we compute the signature ourselves to check it. The secret it
    replaces keeps working for overlap_hours (ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS when not
    given; 0: it stops at once), so the advertiser can deploy the new one without a refused
    postback. Only the secret just replaced is kept: rotating again during an overlap drops the
    one before it."""
    hours = (
        settings.ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS if overlap_hours is None else overlap_hours
    )
    if not 0 <= hours <= SIGNING_SECRET_MAX_OVERLAP_HOURS:
        raise ValueError(f"overlap_hours must be 0 to {SIGNING_SECRET_MAX_OVERLAP_HOURS}")
    # Locked: two rotations at once must not both keep the same "previous" and lose a secret.
    advertiser = Advertiser.objects.select_for_update().get(pk=advertiser_id)
    previous_valid_until = None
    if advertiser.signing_secret_encrypted and hours:
        previous_valid_until = now + timedelta(hours=hours)
        advertiser.previous_signing_secret_encrypted = advertiser.signing_secret_encrypted
        advertiser.previous_signing_secret_prefix = advertiser.signing_secret_prefix
        advertiser.previous_signing_secret_expires_at = previous_valid_until
    else:
        advertiser.previous_signing_secret_encrypted = ""
        advertiser.previous_signing_secret_prefix = ""
        advertiser.previous_signing_secret_expires_at = None
    plain = SIGNING_SECRET_PREFIX + secrets.token_urlsafe(32)
    advertiser.signing_secret_encrypted = secret_encrypt(plain)
    advertiser.signing_secret_prefix = plain[:12]
    advertiser.signing_secret_rotated_at = now
    advertiser.save(update_fields=_SECRET_FIELDS)
    return SigningSecretRotated(
        secret=plain, previous_valid_until=previous_valid_until, advertiser=advertiser
    )


def advertiser_rotate_signing_secret(
    *, advertiser: Advertiser, overlap_hours: int | None = None, now: datetime | None = None
) -> str:
    """advertiser_signing_secret_rotate for an instance in hand (kept up to date); returns the
    new secret, the only time it is shown."""
    rotated = advertiser_signing_secret_rotate(
        advertiser_id=advertiser.pk, now=now or timezone.now(), overlap_hours=overlap_hours
    )
    advertiser.refresh_from_db(fields=_SECRET_FIELDS)
    return rotated.secret
