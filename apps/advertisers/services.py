from __future__ import annotations

import secrets

from apps.accounts.services import secret_hash
from apps.advertisers.models import Advertiser


def advertiser_rotate_postback_token(*, advertiser: Advertiser, token: str | None = None) -> str:
    """Give the advertiser a new postback token; returns it (the only time it is visible)."""
    plain = token or secrets.token_urlsafe(24)
    advertiser.postback_token_hash = secret_hash(plain)
    advertiser.postback_token_prefix = plain[:6]
    advertiser.save(update_fields=["postback_token_hash", "postback_token_prefix"])
    return plain
