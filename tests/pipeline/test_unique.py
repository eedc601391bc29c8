"""Unique clicks: per offer + affiliate, by visitor cookie else IP + user agent, within the
window; bots and non-browsers are redirected but never unique."""

from __future__ import annotations

import time

import pytest

from apps.tracking.models import Click
from tests import factories
from tests.pipeline.conftest import GB_IP, GOOGLEBOT, IPHONE, US_IP, click_url, drain

pytestmark = pytest.mark.django_db


def _uniques() -> list[bool]:
    drain()
    return list(Click.objects.order_by("id").values_list("is_unique", flat=True))


def test_unique_by_cookie_across_networks_and_by_ip_and_ua_without_it(
    browser, client, offer, affiliate
):
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    browser.get(url)  # new visitor: unique, gets a visitor cookie
    browser.get(url, REMOTE_ADDR=US_IP)  # same cookie from another network
    browser.cookies.clear()
    browser.get(url)  # no cookie, same IP + UA
    browser.cookies.clear()
    browser.get(url, HTTP_USER_AGENT=IPHONE)  # no cookie, another device on the same IP
    assert _uniques() == [True, False, False, True]


def test_unique_per_offer_and_per_affiliate(browser, advertiser, offer, affiliate):
    other_offer = factories.OfferFactory(
        advertiser=advertiser, visibility=offer.visibility, destination_url=offer.destination_url
    )
    other_affiliate = factories.AffiliateFactory()
    for offer_id, aff_id in [
        (offer.pk, affiliate.pk),
        (other_offer.pk, affiliate.pk),
        (offer.pk, other_affiliate.pk),
        (offer.pk, affiliate.pk),
        (other_offer.pk, other_affiliate.pk),
    ]:
        browser.get(click_url(offer_id=offer_id, aff_id=aff_id))
    assert _uniques() == [True, True, True, False, True]


def test_the_window_comes_from_settings(browser, offer, affiliate, settings):
    settings.UNIQUE_CLICK_WINDOW_SECONDS = 1
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    browser.get(url)
    browser.get(url)
    time.sleep(1.1)  # the real Redis expires the visitor key
    browser.get(url)
    assert _uniques() == [True, False, True]


@pytest.mark.parametrize(
    "case",  # kind, request headers, is_bot, non_browser
    [
        ("googlebot", {"HTTP_USER_AGENT": GOOGLEBOT}, True, False),
        ("empty ua", {"HTTP_USER_AGENT": ""}, True, True),
        ("head", {}, False, True),
        ("sec-purpose prefetch", {"HTTP_SEC_PURPOSE": "prefetch"}, False, True),
        ("purpose prefetch", {"HTTP_PURPOSE": "prefetch"}, False, True),
        ("firefox prefetch", {"HTTP_X_MOZ": "prefetch"}, False, True),
    ],
)
def test_bots_and_non_browsers_are_redirected_but_never_unique(browser, offer, affiliate, case):
    kind, headers, is_bot, non_browser = case
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk, sub1="z")
    response = browser.head(url, **headers) if kind == "head" else browser.get(url, **headers)
    click_id = response.cookies["ocpa_cid"].value
    assert (response.status_code, response["Location"]) == (
        302,
        f"https://shop.example.com/lp?cid={click_id}&s1=z",
    )
    drain()
    assert Click.objects.values_list("click_id", "is_bot", "non_browser", "is_unique").get() == (
        click_id,
        is_bot,
        non_browser,
        False,
    )


@pytest.mark.parametrize("probe", ["head", "prefetch"])
def test_a_probe_does_not_use_up_the_visitors_unique_click(browser, offer, affiliate, probe):
    """Browsers prefetch links and scanners send HEAD before the person clicks: the click that
    follows from the same browser is still the visitor's first."""
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    if probe == "head":
        browser.head(url)
    else:
        browser.get(url, HTTP_SEC_PURPOSE="prefetch")
    assert "ocpa_vid" in browser.cookies  # the probe got the visitor cookie, as a browser would
    browser.get(url)
    browser.get(url)
    assert drain() == 3
    assert list(Click.objects.order_by("id").values_list("non_browser", "is_unique")) == [
        (True, False),
        (False, True),
        (False, False),
    ]


def test_fallback_clicks_are_never_unique_and_do_not_use_up_the_visitor(
    browser, offer, affiliate, django_capture_on_commit_callbacks, settings
):
    settings.CATALOG_CHECK_SECONDS = 0
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    with django_capture_on_commit_callbacks(execute=True):
        offer.blocked_countries = ["GB"]
        offer.save()
    browser.get(url)
    with django_capture_on_commit_callbacks(execute=True):
        offer.blocked_countries = []
        offer.save()
    browser.get(url, REMOTE_ADDR=GB_IP)
    drain()
    assert list(Click.objects.order_by("id").values_list("fallback_reason", "is_unique")) == [
        ("country_not_allowed", False),
        ("", True),
    ]
