from __future__ import annotations

import pytest

from apps.offers.models import OfferVisibility
from apps.tracking.drain import clicks_drain
from tests import factories

# Every macro the destination engine knows, so one Location assertion checks them all.
FULL_DESTINATION = (
    "https://shop.example.com/lp?cid={click_id}&tid={transaction_id}&oid={offer_id}"
    "&aff={aff_id}&s1={sub1}&s2={sub2}&s3={sub3}&s4={sub4}&s5={sub5}&src={source_id}"
    "&acid={aff_click_id}&cr={creative_id}&geo={country}&ip={ip}&ts={timestamp}&keep={unknown}"
)
SIMPLE_DESTINATION = "https://shop.example.com/lp?cid={click_id}&s1={sub1}"
OFFER_FALLBACK = "https://shop.example.com/fallback"
BROWSER_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
PUBLIC_IP = "81.2.69.160"  # GB in the bundled GeoIP data


def drain() -> int:
    """Move what the click buffer holds into PostgreSQL, as the drain task does."""
    return clicks_drain()


@pytest.fixture
def runnable_offer(offer, access):
    """The default (approval-required) offer, with the affiliate approved on it."""
    offer.destination_url = SIMPLE_DESTINATION
    offer.fallback_url = OFFER_FALLBACK
    offer.save()
    return offer


@pytest.fixture
def public_offer(advertiser):
    return factories.OfferFactory(
        advertiser=advertiser,
        visibility=OfferVisibility.PUBLIC,
        destination_url=SIMPLE_DESTINATION,
        fallback_url=OFFER_FALLBACK,
    )


@pytest.fixture
def browser(client):
    """The Django test client, looking like a shopper's browser from a public IP."""
    client.defaults.update(REMOTE_ADDR=PUBLIC_IP, HTTP_USER_AGENT=BROWSER_UA)
    return client
