"""Affiliate signing keys: the secrets our outbound postbacks are signed with (Standard Webhooks).

A secret is "whsec_" + base64 of 32 random bytes; the HMAC key is the decoded bytes, as every
Standard Webhooks library expects. We must read secrets back to sign, so they are stored encrypted
(apps.common.crypto), never hashed. Rotation adds a new key and lets the old ones keep signing until
they expire, so a receiver can switch keys without dropping a postback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.common.crypto import SecretUnreadable, secret_decrypt, secret_encrypt
from apps.partners.models import Affiliate, AffiliateSigningKey

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret
SIGNATURE_VERSION = "v1"


def _secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key_create(*, affiliate: Affiliate) -> str:
    """Add a signing key; returns the secret, the only time it is shown."""
    plain = _secret_new()
    AffiliateSigningKey.objects.create(
        affiliate=affiliate, secret_encrypted=secret_encrypt(plain), prefix=plain[:12]
    )
    return plain


@transaction.atomic
def signing_key_rotate(
    *, affiliate: Affiliate, overlap_hours: int = 24, now: datetime | None = None
) -> str:
    """A new key; the keys still valid now sign alongside it for overlap_hours more, then expire.
    Returns the new secret (shown once)."""
    now = now or timezone.now()
    overlap_end = now + timedelta(hours=max(overlap_hours, 0))
    AffiliateSigningKey.objects.filter(affiliate=affiliate).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=overlap_end)
    ).update(expires_at=overlap_end)
    return signing_key_create(affiliate=affiliate)


def signing_secrets_active(*, affiliate_id: int, now: datetime) -> list[str]:
    """The secrets that sign right now, newest first; one we cannot decrypt (the encryption key
    changed) is skipped and logged rather than failing the delivery."""
    keys = AffiliateSigningKey.objects.filter(affiliate_id=affiliate_id).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    active = []
    for key in keys.order_by("-created_at", "-id"):
        try:
            active.append(secret_decrypt(key.secret_encrypted))
        except SecretUnreadable:
            logger.error("signing key %s of affiliate %s is unreadable", key.pk, affiliate_id)
    return active


def _key_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def webhook_signature(*, secrets_: list[str], message_id: str, timestamp: int, payload: str) -> str:
    """The webhook-signature header: "v1,<base64 HMAC-SHA256>" per key, space-separated."""
    signed = f"{message_id}.{timestamp}.{payload}".encode()
    return " ".join(
        f"{SIGNATURE_VERSION},"
        + base64.b64encode(hmac.new(_key_bytes(secret), signed, hashlib.sha256).digest()).decode()
        for secret in secrets_
    )


def webhook_headers(
    *, affiliate_id: int, message_id: str, payload: str, now: datetime
) -> dict[str, str]:
    """Standard Webhooks headers for one call; {} when the affiliate has no key signing now."""
    active = signing_secrets_active(affiliate_id=affiliate_id, now=now)
    if not active:
        return {}
    timestamp = int(now.timestamp())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": webhook_signature(
            secrets_=active, message_id=message_id, timestamp=timestamp, payload=payload
        ),
    }
