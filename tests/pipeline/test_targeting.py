"""Targeting per offer (countries, devices, operating systems) and the fallback chain a refused
click goes down: fallback offer(s), the offer's fallback URL, the network's URL."""

from __future__ import annotations

import itertools

import pytest

from apps.offers.models import OfferStatus, OfferVisibility
from apps.tracking.models import Click
from tests import factories
from tests.pipeline.conftest import (
    GB_IP,
    GOOGLEBOT,
    IPAD,
    IPHONE,
    MAC_SAFARI,
    NETWORK_FALLBACK,
    OFFER_FALLBACK,
    US_IP,
    WINDOWS_CHROME,
    click_url,
    drain,
)

pytestmark = pytest.mark.django_db

ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
CHROME = WINDOWS_CHROME
ROWS = ("offer_id", "fallback_reason", "origin_offer_id", "is_unique", "country", "device_type")


def _targeted(advertiser, **targeting):
    return factories.OfferFactory(
        advertiser=advertiser,
        visibility=OfferVisibility.PUBLIC,
        destination_url="https://shop.example.com/lp?cid={click_id}",
        fallback_url=OFFER_FALLBACK,
        **targeting,
    )


def _click(client, offer, affiliate, *, ip=GB_IP, ua=CHROME):
    return client.get(
        click_url(offer_id=offer.pk, aff_id=affiliate.pk), REMOTE_ADDR=ip, HTTP_USER_AGENT=ua
    )


def _assert_served(response, offer) -> None:
    assert response.status_code == 302
    click_id = response.cookies["ocpa_cid"].value
    assert response["Location"] == f"https://shop.example.com/lp?cid={click_id}"
    assert "X-Fallback-Reason" not in response
    drain()
    assert Click.objects.values_list("click_id", "offer_id", "fallback_reason").get() == (
        click_id,
        offer.pk,
        "",
    )


def _assert_refused(response, offer, reason, *, country, device_type) -> None:
    assert (response.status_code, response["Location"]) == (302, OFFER_FALLBACK)
    assert response["X-Fallback-Reason"] == reason
    assert "ocpa_cid" not in response.cookies
    drain()
    assert list(Click.objects.values_list(*ROWS)) == [
        (offer.pk, reason, None, False, country, device_type)
    ]


COUNTRY, DEVICE, OS = "country_not_allowed", "device_not_allowed", "os_not_allowed"
PRIVATE_IP = "10.0.0.1"  # no country


@pytest.mark.parametrize(
    "case",
    # targeting, IP, user agent, refusal (None: served), stored country, stored device type
    [
        ({"allowed_countries": ["GB"]}, GB_IP, CHROME, None, "GB", "desktop"),
        ({"allowed_countries": ["GB"]}, US_IP, CHROME, COUNTRY, "US", "desktop"),
        ({"allowed_countries": ["GB"]}, PRIVATE_IP, CHROME, COUNTRY, "", "desktop"),
        ({"allowed_countries": ["DE", "US"]}, US_IP, CHROME, None, "US", "desktop"),
        ({"blocked_countries": ["GB"]}, GB_IP, CHROME, COUNTRY, "GB", "desktop"),
        ({"blocked_countries": ["GB"]}, US_IP, CHROME, None, "US", "desktop"),
        ({"blocked_countries": ["GB"]}, PRIVATE_IP, CHROME, None, "", "desktop"),
        ({"allowed_devices": ["mobile"]}, GB_IP, IPHONE, None, "GB", "mobile"),
        ({"allowed_devices": ["mobile"]}, GB_IP, ANDROID, None, "GB", "mobile"),
        ({"allowed_devices": ["mobile"]}, GB_IP, CHROME, DEVICE, "GB", "desktop"),
        ({"allowed_devices": ["mobile"]}, GB_IP, IPAD, DEVICE, "GB", "tablet"),
        ({"allowed_devices": ["tablet"]}, GB_IP, IPAD, None, "GB", "tablet"),
        ({"allowed_devices": ["desktop"]}, GB_IP, CHROME, None, "GB", "desktop"),
        ({"allowed_devices": ["desktop"]}, GB_IP, MAC_SAFARI, None, "GB", "desktop"),
        ({"allowed_devices": ["desktop"]}, GB_IP, IPHONE, DEVICE, "GB", "mobile"),
        ({"allowed_devices": ["desktop"]}, GB_IP, GOOGLEBOT, DEVICE, "GB", "other"),
        ({"allowed_os": ["ios"]}, GB_IP, IPHONE, None, "GB", "mobile"),
        ({"allowed_os": ["ios"]}, GB_IP, IPAD, None, "GB", "tablet"),
        ({"allowed_os": ["ios"]}, GB_IP, ANDROID, OS, "GB", "mobile"),
        ({"allowed_os": ["ios"]}, GB_IP, CHROME, OS, "GB", "desktop"),
        ({"allowed_os": ["windows", "macos"]}, GB_IP, MAC_SAFARI, None, "GB", "desktop"),
        ({"allowed_devices": ["mobile"], "allowed_os": ["android"]}, GB_IP, IPHONE, OS, "GB", "mobile"),  # noqa: E501
        ({"allowed_countries": ["US"], "allowed_devices": ["mobile"]}, GB_IP, CHROME, COUNTRY, "GB", "desktop"),  # noqa: E501
    ],
)  # fmt: skip
def test_targeting(client, advertiser, affiliate, case):
    targeting, ip, ua, refused, country, device_type = case
    offer = _targeted(advertiser, **targeting)
    response = _click(client, offer, affiliate, ip=ip, ua=ua)
    if refused is None:
        _assert_served(response, offer)
        assert Click.objects.values_list("country", "device_type").get() == (country, device_type)
    else:
        _assert_refused(response, offer, refused, country=country, device_type=device_type)


def test_a_refused_click_goes_to_the_fallback_offer(client, advertiser, affiliate):
    backup = _targeted(advertiser)
    backup.destination_url = "https://backup.example.com/?cid={click_id}&o={offer_id}"
    backup.save()
    offer = _targeted(advertiser, allowed_countries=["US"], fallback_offer=backup)

    response = _click(client, offer, affiliate)
    click_id = response.cookies["ocpa_cid"].value
    assert response["Location"] == f"https://backup.example.com/?cid={click_id}&o={backup.pk}"
    # The pixels of both offers (the same advertiser's) find it: the thank-you page may be
    # either's.
    assert response.cookies[f"ocpa_cid_{backup.pk}"].value == click_id
    assert response.cookies[f"ocpa_cid_{offer.pk}"].value == click_id
    assert "X-Fallback-Reason" not in response
    drain()
    # A billable click of the fallback offer, remembering the offer the link named.
    assert list(Click.objects.values_list("click_id", *ROWS)) == [
        (click_id, backup.pk, "", offer.pk, True, "GB", "desktop")
    ]


def test_a_fallback_offer_that_refuses_too_leads_to_the_offer_fallback_url(
    client, advertiser, affiliate
):
    backup = _targeted(advertiser, status=OfferStatus.PAUSED)
    offer = _targeted(advertiser, allowed_devices=["mobile"], fallback_offer=backup)
    response = _click(client, offer, affiliate)
    # The reason recorded is the first one: why the named offer refused.
    _assert_refused(response, offer, "device_not_allowed", country="GB", device_type="desktop")


def test_without_a_fallback_url_the_network_url_is_last(client, advertiser, affiliate, settings):
    settings.NETWORK_FALLBACK_URL = "https://network.example.org/sorry"
    offer = _targeted(advertiser, allowed_os=["android"])
    offer.fallback_url = ""
    offer.save()
    response = _click(client, offer, affiliate)
    assert (response["Location"], response["X-Fallback-Reason"]) == (
        "https://network.example.org/sorry",
        "os_not_allowed",
    )
    drain()
    assert list(Click.objects.values_list("offer_id", "fallback_reason", "is_unique")) == [
        (offer.pk, "os_not_allowed", False)
    ]


def test_the_network_fallback_defaults_to_our_own_page(client, advertiser, affiliate):
    offer = _targeted(advertiser, blocked_countries=["GB"])
    offer.fallback_url = ""
    offer.save()
    response = _click(client, offer, affiliate)
    assert (response["Location"], response["X-Fallback-Reason"]) == (
        NETWORK_FALLBACK,
        "country_not_allowed",
    )


def test_fallback_offers_that_point_at_each_other_end_at_the_fallback_url(
    client, advertiser, affiliate
):
    first = _targeted(advertiser, allowed_countries=["US"])
    second = _targeted(advertiser, allowed_countries=["US"], fallback_offer=first)
    first.fallback_offer = second
    first.save()
    response = _click(client, first, affiliate)
    _assert_refused(response, first, "country_not_allowed", country="GB", device_type="desktop")


@pytest.mark.parametrize(("runnable_at", "served"), [(3, True), (4, False)])
def test_the_chain_follows_at_most_three_fallback_offers(
    client, advertiser, affiliate, runnable_at, served
):
    chain = [
        _targeted(advertiser, allowed_countries=[] if i == runnable_at else ["US"])
        for i in range(5)
    ]
    for offer, following in itertools.pairwise(chain):
        offer.fallback_offer = following
        offer.save()
    response = _click(client, chain[0], affiliate)
    if served:
        drain()
        assert list(
            Click.objects.values_list("offer_id", "origin_offer_id", "fallback_reason")
        ) == [(chain[3].pk, chain[0].pk, "")]
        assert "ocpa_cid" in response.cookies
    else:
        _assert_refused(
            response, chain[0], "country_not_allowed", country="GB", device_type="desktop"
        )


def test_a_fallback_offer_needs_access_like_any_other(client, advertiser, affiliate):
    backup = factories.OfferFactory(
        advertiser=advertiser, visibility=OfferVisibility.APPROVAL_REQUIRED
    )
    offer = _targeted(advertiser, allowed_countries=["US"], fallback_offer=backup)
    response = _click(client, offer, affiliate)
    _assert_refused(response, offer, "country_not_allowed", country="GB", device_type="desktop")
