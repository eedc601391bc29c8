"""The click pipeline against the real Redis and PostgreSQL: buffer, drain, catalog, caps."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from apps.common.redis import redis_client
from apps.offers.models import OfferVisibility
from apps.tracking.buffer import DRAIN_GROUP, STREAM_KEY
from apps.tracking.drain import clicks_drain
from tests import factories

DESTINATION = "https://shop.example.com/lp?cid={click_id}&s1={sub1}"
OFFER_FALLBACK = "https://shop.example.com/fallback"
NETWORK_FALLBACK = "/offer-unavailable/"
WINDOWS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GB_IP = "81.2.69.160"
US_IP = "8.8.8.8"


def click_url(path: str = "/click", **params: object) -> str:
    return f"{path}?{urlencode(params)}"


def drain(**kwargs: object) -> int:
    """Move what the click buffer holds into PostgreSQL, as the drain task does."""
    return clicks_drain(**kwargs)  # type: ignore[arg-type]


def stream_state() -> tuple[int, int]:
    """(entries still in the stream, entries read but not acknowledged)."""
    client = redis_client()
    length = client.xlen(STREAM_KEY)
    if not client.exists(STREAM_KEY):
        return length, 0
    groups = {g["name"].decode(): g["pending"] for g in client.xinfo_groups(STREAM_KEY)}
    return length, groups.get(DRAIN_GROUP, 0)


@pytest.fixture
def offer(advertiser):
    """A public, active offer: any active affiliate may send clicks."""
    return factories.OfferFactory(
        advertiser=advertiser,
        visibility=OfferVisibility.PUBLIC,
        destination_url=DESTINATION,
        fallback_url=OFFER_FALLBACK,
    )


@pytest.fixture
def browser(client):
    """The Django test client, looking like a desktop shopper in Great Britain."""
    client.defaults.update(REMOTE_ADDR=GB_IP, HTTP_USER_AGENT=WINDOWS_CHROME)
    return client
