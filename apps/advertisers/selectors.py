from __future__ import annotations

from apps.accounts.services import secret_hash
from apps.advertisers.models import Advertiser


def advertiser_for_token(token: str) -> Advertiser | None:
    """The advertiser whose postback token this is (tokens are stored hashed, the hash indexed);
    None for an empty or unknown token."""
    if not token:
        return None
    return Advertiser.objects.filter(postback_token_hash=secret_hash(token)).first()
