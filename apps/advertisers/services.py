from __future__ import annotations

import secrets

from apps.accounts.services import secret_hash
from apps.advertisers.models import Advertiser
from apps.common.crypto import secret_encrypt

SIGNING_SECRET_PREFIX = "whsec_"  # noqa: S105  # a marker, not a secret


def advertiser_rotate_postback_token(*, advertiser: Advertiser, token: str | None = None) -> str:
    """Give the advertiser a new postback token; returns it (the only time it is visible)."""
    plain = token or secrets.token_urlsafe(24)
    advertiser.postback_token_hash = secret_hash(plain)
    advertiser.postback_token_prefix = plain[:6]
    advertiser.save(update_fields=["postback_token_hash", "postback_token_prefix"])
    return plain


def advertiser_rotate_signing_secret(*, advertiser: Advertiser) -> str:
    """Give the advertiser a new HMAC signing secret; returns it (the only time it is shown).

    Stored encrypted, not hashed: we compute the signature ourselves to check it. The old secret
    stops working at once, so the advertiser should switch as soon as it has the new one."""
    plain = SIGNING_SECRET_PREFIX + secrets.token_urlsafe(32)
    advertiser.signing_secret_encrypted = secret_encrypt(plain)
    advertiser.signing_secret_prefix = plain[:12]
    advertiser.save(update_fields=["signing_secret_encrypted", "signing_secret_prefix"])
    return plain
