"""`GET /click` (and `/aff_c`) over HTTP: the redirect, the stored click, the cookies, fallbacks."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import time_machine

from apps.offers.models import AccessStatus, OfferStatus, OfferVisibility
from apps.partners.models import AffiliateStatus
from apps.quality.leads import device_key
from apps.tracking.click_ids import click_id_time
from apps.tracking.models import Click
from tests import factories
from tests.tracking.conftest import (
    BROWSER_UA,
    FULL_DESTINATION,
    OFFER_FALLBACK,
    PUBLIC_IP,
    drain,
)

pytestmark = pytest.mark.django_db

NETWORK_FALLBACK = "/offer-unavailable/"
FROZEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")
CLICK_ID_LENGTH = 29  # 7 base-36 characters of the creation second, then 22 random ones
HOSTILE_REDIRECTS = {
    "url": "https://evil.example/",
    "redirect": "https://evil.example/",
    "destination_url": "https://evil.example/",
    "fallback_url": "https://evil.example/",
    "next": "//evil.example/",
}


def _click_url(path: str = "/click", **params: object) -> str:
    return f"{path}?{urlencode(params)}"


def _assert_fallback(response, location: str, reason: str, *, offer=None, affiliate=None) -> None:
    """A fallback redirect with no cookies. When the offer and affiliate are known the click is
    kept as an unbilled row carrying the reason; otherwise nothing is stored."""
    assert response.status_code == 302
    assert response["Location"] == location
    assert response["X-Fallback-Reason"] == reason
    assert response["Cache-Control"] == "no-store"
    assert "ocpa_cid" not in response.cookies
    assert "ocpa_vid" not in response.cookies
    drain()
    rows = list(
        Click.objects.values_list(
            "offer_id", "affiliate_id", "fallback_reason", "is_unique", "origin_offer_id"
        )
    )
    if offer is None:
        assert rows == []
    else:
        assert rows == [(offer.pk, affiliate.pk, reason, False, None)]


# --- the happy path ------------------------------------------------------------------------------


def test_click_redirects_with_every_macro_filled_and_stores_the_click(
    browser, runnable_offer, affiliate
):
    runnable_offer.destination_url = FULL_DESTINATION
    runnable_offer.save()
    query = {
        "offer_id": runnable_offer.pk,
        "aff_id": affiliate.pk,
        "sub1": "spring sale",
        "sub2": "a&b=c",
        "sub3": "ü/?#",
        "sub4": "4",
        "sub5": "5",
        "source_id": "news-site",
        "aff_click_id": "AFF-123",
        "creative_id": "cr9",
        "url_id": "lp2",
    }
    with time_machine.travel(FROZEN, tick=False):
        response = browser.get(
            _click_url(**query), HTTP_REFERER="https://publisher.example/article?id=7"
        )

    assert response.status_code == 302
    assert Click.objects.count() == 0  # buffered in Redis: no PostgreSQL write on the hot path
    assert drain() == 1
    drain()
    click = Click.objects.get()
    cid = click.click_id
    assert response["Location"] == (
        f"https://shop.example.com/lp?cid={cid}&tid={cid}&oid={runnable_offer.pk}"
        f"&aff={affiliate.pk}&s1=spring%20sale&s2=a%26b%3Dc&s3=%C3%BC%2F%3F%23&s4=4&s5=5"
        f"&src=news-site&acid=AFF-123&cr=cr9&geo=GB&ip=81.2.69.160&ts={int(FROZEN.timestamp())}"
        "&keep=%7Bunknown%7D"  # left as is by the engine; Django IRI-encodes the Location
    )
    assert "X-Fallback-Reason" not in response
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer-when-downgrade"

    assert len(cid) == CLICK_ID_LENGTH
    assert URL_SAFE.match(cid)
    assert click_id_time(cid) == FROZEN
    row = Click.objects.values().get()
    assert row == {
        "id": click.pk,
        "click_id": cid,
        "offer_id": runnable_offer.pk,
        "affiliate_id": affiliate.pk,
        "created_at": FROZEN,
        "ip": PUBLIC_IP,
        "country": "GB",
        "user_agent": BROWSER_UA,
        "referrer": "https://publisher.example/article?id=7",
        "device_type": "desktop",
        "os": "windows",
        "browser": "Chrome",
        "is_bot": False,
        "non_browser": False,
        "is_unique": True,
        "fallback_reason": "",
        "origin_offer_id": None,
        "sub1": "spring sale",
        "sub2": "a&b=c",
        "sub3": "ü/?#",
        "sub4": "4",
        "sub5": "5",
        "source_id": "news-site",
        "aff_click_id": "AFF-123",
        "creative_id": "cr9",
        "url_id": "lp2",
        # The device key the lead-quality history is read with (apps.quality.leads).
        "ua_ip_hash": device_key(BROWSER_UA, PUBLIC_IP),
    }

    # The latest click of all, and the latest on this offer (what the offer's pixels read).
    for name in ("ocpa_cid", f"ocpa_cid_{runnable_offer.pk}"):
        cookie = response.cookies[name]
        assert cookie.value == cid
        assert cookie["max-age"] == runnable_offer.attribution_window_days * 86400
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Lax"
        assert not cookie["secure"]
    visitor = response.cookies["ocpa_vid"]
    assert len(visitor.value) >= 22
    assert URL_SAFE.match(visitor.value)
    assert visitor["max-age"] == 365 * 86400
    assert visitor["httponly"] is True


def test_click_over_https_sets_secure_samesite_none_cookies(browser, runnable_offer, affiliate):
    response = browser.get(_click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk), secure=True)
    assert response.status_code == 302
    for name in ("ocpa_cid", f"ocpa_cid_{runnable_offer.pk}", "ocpa_vid"):
        assert response.cookies[name]["secure"] is True
        assert response.cookies[name]["samesite"] == "None"


def test_click_without_subs_leaves_macros_empty(browser, runnable_offer, affiliate):
    response = browser.get(_click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk))
    drain()
    click = Click.objects.get()
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1="
    assert (click.sub1, click.sub2, click.source_id, click.aff_click_id, click.referrer) == (
        "",
        "",
        "",
        "",
        "",
    )


def test_click_ids_are_unique_and_url_safe_across_many_clicks(browser, runnable_offer, affiliate):
    url = _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk)
    locations = {browser.get(url)["Location"] for _ in range(60)}
    assert drain() == 60
    ids = list(Click.objects.values_list("click_id", flat=True))
    assert len(ids) == 60
    assert len(set(ids)) == 60
    assert all(len(cid) == CLICK_ID_LENGTH and URL_SAFE.match(cid) for cid in ids)
    assert locations == {f"https://shop.example.com/lp?cid={cid}&s1=" for cid in ids}


def test_the_click_cookie_names_the_latest_click(browser, runnable_offer, affiliate):
    url = _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk)
    first = browser.get(url).cookies["ocpa_cid"].value
    second = browser.get(url).cookies["ocpa_cid"].value
    assert first != second
    drain()
    assert set(Click.objects.values_list("click_id", flat=True)) == {first, second}


def test_head_request_redirects_like_get_but_is_not_billable(browser, runnable_offer, affiliate):
    response = browser.head(_click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk))
    assert response.status_code == 302
    drain()
    click = Click.objects.get()
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1="
    assert (click.non_browser, click.is_bot, click.is_unique) == (True, False, False)


@pytest.mark.parametrize("destination", ["image", "script", "iframe", "empty", "style"])
def test_a_link_a_page_embeds_leaves_no_cookie(browser, runnable_offer, affiliate, destination):
    """<img src=/click…> on an affiliate's page (cookie stuffing): the browser says what asked
    for the link (Sec-Fetch-Dest). Recorded as a non-browser click, redirected, no cookie."""
    response = browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk),
        headers={"Sec-Fetch-Dest": destination, "Sec-Fetch-Mode": "no-cors"},
    )
    assert response.status_code == 302
    assert not response.cookies
    drain()
    click = Click.objects.get()
    assert (click.non_browser, click.is_unique) == (True, False)


def test_a_link_the_shopper_opens_is_a_document(browser, runnable_offer, affiliate):
    response = browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk),
        headers={"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"},
    )
    assert {"ocpa_cid", f"ocpa_cid_{runnable_offer.pk}", "ocpa_vid"} <= set(response.cookies)
    drain()
    assert Click.objects.get().non_browser is False


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_unsafe_methods_are_refused(browser, runnable_offer, affiliate, method):
    response = getattr(browser, method)(_click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk))
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert drain() == 0
    assert Click.objects.count() == 0


def test_request_redirect_params_never_change_the_destination(browser, runnable_offer, affiliate):
    response = browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk, **HOSTILE_REDIRECTS)
    )
    drain()
    click = Click.objects.get()
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1="


# --- aliases from other platforms ----------------------------------------------------------------


def _stored_params(click: Click) -> dict[str, str]:
    return {
        "sub1": click.sub1,
        "sub2": click.sub2,
        "sub3": click.sub3,
        "sub4": click.sub4,
        "sub5": click.sub5,
        "source_id": click.source_id,
        "aff_click_id": click.aff_click_id,
    }


def test_everflow_oid_affid(browser, runnable_offer, affiliate):
    response = browser.get(
        _click_url(oid=runnable_offer.pk, affid=affiliate.pk, sub1="ef1", sub5="ef5")
    )
    drain()
    click = Click.objects.get()
    assert (click.offer_id, click.affiliate_id) == (runnable_offer.pk, affiliate.pk)
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1=ef1"
    assert _stored_params(click) == {
        "sub1": "ef1",
        "sub2": "",
        "sub3": "",
        "sub4": "",
        "sub5": "ef5",
        "source_id": "",
        "aff_click_id": "",
    }


def test_hasoffers_aff_c_path_and_param_names(browser, runnable_offer, affiliate):
    response = browser.get(
        _click_url(
            "/aff_c",
            offer_id=runnable_offer.pk,
            aff_id=affiliate.pk,
            aff_sub="h1",
            aff_sub2="h2",
            aff_sub3="h3",
            aff_sub4="h4",
            aff_sub5="h5",
            source="hsrc",
            aff_click_id="their-click",
        )
    )
    drain()
    click = Click.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1=h1"
    assert response.cookies["ocpa_cid"].value == click.click_id
    assert _stored_params(click) == {
        "sub1": "h1",
        "sub2": "h2",
        "sub3": "h3",
        "sub4": "h4",
        "sub5": "h5",
        "source_id": "hsrc",
        "aff_click_id": "their-click",
    }


def test_hasoffers_aff_c_falls_back_like_click(browser):
    _assert_fallback(browser.get("/aff_c?offer_id=x"), NETWORK_FALLBACK, "missing_ids")


def test_affise_pid(browser, runnable_offer, affiliate):
    browser.get(_click_url(offer_id=runnable_offer.pk, pid=affiliate.pk, sub2="af2"))
    drain()
    click = Click.objects.get()
    assert (click.offer_id, click.affiliate_id, click.sub2) == (
        runnable_offer.pk,
        affiliate.pk,
        "af2",
    )


def test_scaleo_o_a_sub_id(browser, runnable_offer, affiliate):
    response = browser.get(
        _click_url(
            o=runnable_offer.pk,
            a=affiliate.pk,
            sub_id1="s1",
            sub_id2="s2",
            sub_id3="s3",
            sub_id4="s4",
            sub_id5="s5",
        )
    )
    drain()
    click = Click.objects.get()
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1=s1"
    assert (click.offer_id, click.affiliate_id) == (runnable_offer.pk, affiliate.pk)
    assert [click.sub1, click.sub2, click.sub3, click.sub4, click.sub5] == [
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
    ]


def test_canonical_names_win_over_aliases(browser, runnable_offer, affiliate, advertiser):
    other = factories.OfferFactory(advertiser=advertiser, visibility=OfferVisibility.PUBLIC)
    browser.get(
        _click_url(
            offer_id=runnable_offer.pk,
            oid=other.pk,
            aff_id=affiliate.pk,
            sub1="canonical",
            aff_sub="alias",
        )
    )
    drain()
    click = Click.objects.get()
    assert (click.offer_id, click.sub1) == (runnable_offer.pk, "canonical")


def test_empty_canonical_value_lets_the_alias_through(browser, runnable_offer, affiliate):
    browser.get(f"/click?offer_id=&oid={runnable_offer.pk}&aff_id={affiliate.pk}&sub1=&aff_sub=x")
    drain()
    click = Click.objects.get()
    assert (click.offer_id, click.sub1) == (runnable_offer.pk, "x")


# --- fallbacks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "",
        "offer_id=1",
        "aff_id=1",
        "offer_id=&aff_id=",
        "offer_id=abc&aff_id=1",
        "offer_id=1&aff_id=abc",
        "offer_id=1.0&aff_id=1",
        "offer_id=-1&aff_id=1",
        "offer_id=0&aff_id=1",
        "offer_id=+1&aff_id=1",
        "offer_id=%201&aff_id=1",
        "offer_id=1e3&aff_id=1",
        "offer_id=0x1&aff_id=1",
        "offer_id=%EF%BC%91&aff_id=1",  # fullwidth digit one
        "offer_id=%C2%B9&aff_id=1",  # superscript one
        "offer_id=9999999999999999999999&aff_id=1",
    ],
)
def test_missing_or_malformed_ids_go_to_network_fallback(browser, runnable_offer, query):
    response = browser.get("/click?" + query + "&url=https://evil.example/")
    _assert_fallback(response, NETWORK_FALLBACK, "missing_ids")


def test_network_fallback_url_comes_from_settings(browser, settings):
    settings.NETWORK_FALLBACK_URL = "https://network.example.org/sorry"
    _assert_fallback(browser.get("/click"), "https://network.example.org/sorry", "missing_ids")


@pytest.mark.parametrize("offer_id", ["987654321", "999999999999999999"])
def test_unknown_offer_goes_to_network_fallback(browser, affiliate, offer_id):
    response = browser.get(_click_url(offer_id=offer_id, aff_id=affiliate.pk, **HOSTILE_REDIRECTS))
    _assert_fallback(response, NETWORK_FALLBACK, "unknown_offer")


def test_unknown_affiliate_goes_to_offer_fallback(browser, runnable_offer):
    response = browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=987654321, **HOSTILE_REDIRECTS)
    )
    _assert_fallback(response, OFFER_FALLBACK, "unknown_affiliate")


def test_offer_without_fallback_url_uses_network_fallback(browser, runnable_offer):
    runnable_offer.fallback_url = ""
    runnable_offer.save()
    response = browser.get(_click_url(offer_id=runnable_offer.pk, aff_id=987654321))
    _assert_fallback(response, NETWORK_FALLBACK, "unknown_affiliate")


@pytest.mark.parametrize("status", [OfferStatus.PAUSED, OfferStatus.ARCHIVED])
def test_offer_not_active_goes_to_offer_fallback(browser, runnable_offer, affiliate, status):
    runnable_offer.status = status
    runnable_offer.save()
    response = browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk, **HOSTILE_REDIRECTS)
    )
    _assert_fallback(
        response, OFFER_FALLBACK, "not_runnable", offer=runnable_offer, affiliate=affiliate
    )


@pytest.mark.parametrize("status", [AffiliateStatus.PENDING, AffiliateStatus.SUSPENDED])
def test_affiliate_not_active_goes_to_offer_fallback(browser, runnable_offer, affiliate, status):
    affiliate.status = status
    affiliate.save()
    response = browser.get(_click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk))
    _assert_fallback(
        response, OFFER_FALLBACK, "not_runnable", offer=runnable_offer, affiliate=affiliate
    )


@pytest.mark.parametrize("access_status", [None, AccessStatus.PENDING, AccessStatus.REJECTED])
@pytest.mark.parametrize("visibility", [OfferVisibility.APPROVAL_REQUIRED, OfferVisibility.PRIVATE])
def test_restricted_offer_needs_approved_access(
    browser, advertiser, affiliate, visibility, access_status
):
    offer = factories.OfferFactory(
        advertiser=advertiser, visibility=visibility, fallback_url=OFFER_FALLBACK
    )
    if access_status is not None:
        factories.OfferAccessFactory(offer=offer, affiliate=affiliate, status=access_status)
    response = browser.get(_click_url(offer_id=offer.pk, aff_id=affiliate.pk, **HOSTILE_REDIRECTS))
    _assert_fallback(response, OFFER_FALLBACK, "not_runnable", offer=offer, affiliate=affiliate)


def test_access_of_another_affiliate_does_not_count(browser, advertiser, affiliate):
    offer = factories.OfferFactory(advertiser=advertiser, fallback_url=OFFER_FALLBACK)
    factories.OfferAccessFactory(offer=offer, affiliate=factories.AffiliateFactory())
    response = browser.get(_click_url(offer_id=offer.pk, aff_id=affiliate.pk))
    _assert_fallback(response, OFFER_FALLBACK, "not_runnable", offer=offer, affiliate=affiliate)


@pytest.mark.parametrize("visibility", [OfferVisibility.APPROVAL_REQUIRED, OfferVisibility.PRIVATE])
def test_restricted_offer_with_approved_access_is_runnable(
    browser, advertiser, affiliate, visibility
):
    offer = factories.OfferFactory(advertiser=advertiser, visibility=visibility)
    factories.OfferAccessFactory(offer=offer, affiliate=affiliate, status=AccessStatus.APPROVED)
    response = browser.get(_click_url(offer_id=offer.pk, aff_id=affiliate.pk))
    drain()
    click = Click.objects.get()
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1="


def test_public_offer_with_rejected_access_goes_to_fallback(browser, public_offer, affiliate):
    factories.OfferAccessFactory(
        offer=public_offer, affiliate=affiliate, status=AccessStatus.REJECTED
    )
    response = browser.get(_click_url(offer_id=public_offer.pk, aff_id=affiliate.pk))
    _assert_fallback(
        response, OFFER_FALLBACK, "not_runnable", offer=public_offer, affiliate=affiliate
    )


@pytest.mark.parametrize("access_status", [None, AccessStatus.PENDING, AccessStatus.APPROVED])
def test_public_offer_runs_without_approval(browser, public_offer, affiliate, access_status):
    if access_status is not None:
        factories.OfferAccessFactory(offer=public_offer, affiliate=affiliate, status=access_status)
    response = browser.get(_click_url(offer_id=public_offer.pk, aff_id=affiliate.pk, sub1="p"))
    drain()
    click = Click.objects.get()
    assert (click.offer_id, click.affiliate_id) == (public_offer.pk, affiliate.pk)
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1=p"


# --- hostile input -------------------------------------------------------------------------------


def test_huge_sub_is_stored_truncated(browser, runnable_offer, affiliate):
    huge = "x" * 10_000
    response = browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk, sub1=huge, sub2=huge)
    )
    drain()
    click = Click.objects.get()
    assert click.sub1 == "x" * 255
    assert click.sub2 == "x" * 255
    assert response["Location"] == (
        f"https://shop.example.com/lp?cid={click.click_id}&s1={'x' * 255}"
    )


def test_huge_headers_are_stored_truncated(browser, runnable_offer, affiliate):
    browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk),
        HTTP_USER_AGENT=BROWSER_UA + "u" * 10_000,
        HTTP_REFERER="https://ref.example/" + "r" * 10_000,
    )
    drain()
    click = Click.objects.get()
    assert click.user_agent == (BROWSER_UA + "u" * 10_000)[:512]
    assert click.referrer == ("https://ref.example/" + "r" * 10_000)[:1024]


def test_invalid_utf8_is_replaced_not_an_error(browser, runnable_offer, affiliate):
    response = browser.get(
        f"/click?offer_id={runnable_offer.pk}&aff_id={affiliate.pk}&sub1=a%ff%feb&sub2=%c3"
    )
    drain()
    click = Click.objects.get()
    assert (click.sub1, click.sub2) == ("a\ufffd\ufffdb", "\ufffd")
    assert response["Location"] == (
        f"https://shop.example.com/lp?cid={click.click_id}&s1=a%EF%BF%BD%EF%BF%BDb"
    )


def test_nul_and_control_characters_are_dropped(browser, runnable_offer, affiliate):
    response = browser.get(
        f"/click?offer_id={runnable_offer.pk}&aff_id={affiliate.pk}"
        "&sub1=a%00b%01c%1bd%7fe%c2%85f&sub2=%00%00&source_id=s%00rc&aff_click_id=%00x"
    )
    drain()
    click = Click.objects.get()
    assert (click.sub1, click.sub2, click.source_id, click.aff_click_id) == (
        "abcdef",
        "",
        "src",
        "x",
    )
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1=abcdef"


def test_nul_in_ids_does_not_make_a_click_or_an_error(browser, runnable_offer, affiliate):
    response = browser.get(f"/click?offer_id=%00&aff_id={affiliate.pk}%00")
    _assert_fallback(response, NETWORK_FALLBACK, "missing_ids")


def test_nul_in_headers_is_dropped(browser, runnable_offer, affiliate):
    browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk),
        HTTP_USER_AGENT="Mozilla/5.0\x00 (X11; Linux x86_64) Firefox/125.0",
        HTTP_REFERER="https://ref.example/\x00x",
    )
    drain()
    click = Click.objects.get()
    assert click.user_agent == "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"
    assert click.referrer == "https://ref.example/x"


def test_thousands_of_parameters_go_to_fallback_not_an_error(browser, runnable_offer, affiliate):
    junk = "&".join(f"p{i}={i}" for i in range(5000))
    response = browser.get(
        f"/click?offer_id={runnable_offer.pk}&aff_id={affiliate.pk}&url=https://evil.example/&"
        + junk
    )
    _assert_fallback(response, NETWORK_FALLBACK, "bad_request")


@pytest.mark.parametrize("literal", ["{click_id}", "{ip}", "{transaction_id}", "{sub2}"])
def test_macro_literal_in_a_value_is_encoded_not_expanded(
    browser, runnable_offer, affiliate, literal
):
    response = browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk, sub1=literal, sub2="two")
    )
    drain()
    click = Click.objects.get()
    assert click.sub1 == literal
    encoded = "%7B" + literal[1:-1] + "%7D"
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1={encoded}"


def test_url_syntax_in_a_value_cannot_add_parameters(browser, runnable_offer, affiliate):
    value = "a&cid=evil&b=c#frag/../?x=y https://evil.example/"
    response = browser.get(_click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk, sub1=value))
    drain()
    click = Click.objects.get()
    location = response["Location"]
    assert location == (
        f"https://shop.example.com/lp?cid={click.click_id}"
        "&s1=a%26cid%3Devil%26b%3Dc%23frag%2F..%2F%3Fx%3Dy%20https%3A%2F%2Fevil.example%2F"
    )
    parts = urlsplit(location)
    assert (parts.netloc, parts.path, parts.fragment) == ("shop.example.com", "/lp", "")
    assert parse_qs(parts.query) == {"cid": [click.click_id], "s1": [value]}


def test_destination_that_would_be_too_long_goes_to_fallback(browser, runnable_offer, affiliate):
    """Macros repeated in the destination multiply the subs; the redirect must stay a 302."""
    runnable_offer.destination_url = "https://shop.example.com/lp?" + "&".join(
        f"k{i}={{sub1}}" for i in range(100)
    )
    runnable_offer.save()
    response = browser.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk, sub1="\U0001f600" * 255)
    )
    _assert_fallback(
        response, OFFER_FALLBACK, "bad_request", offer=runnable_offer, affiliate=affiliate
    )


def test_strange_visitor_cookie_is_tolerated(browser, runnable_offer, affiliate):
    browser.cookies["ocpa_vid"] = "v" * 5000
    response = browser.get(_click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk))
    assert response.status_code == 302
    drain()
    assert Click.objects.get().is_unique is True
    assert "ocpa_vid" not in response.cookies  # the visitor keeps the cookie it has


# --- unique clicks and bots ----------------------------------------------------------------------


def test_second_click_from_the_same_browser_is_not_unique(browser, runnable_offer, affiliate):
    url = _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk)
    first = browser.get(url)
    visitor = first.cookies["ocpa_vid"].value
    second = browser.get(url)
    assert "ocpa_vid" not in second.cookies  # the browser keeps its visitor id
    assert browser.cookies["ocpa_vid"].value == visitor
    drain()
    assert list(Click.objects.order_by("id").values_list("is_unique", flat=True)) == [True, False]


def test_same_visitor_cookie_from_another_ip_is_not_unique(browser, runnable_offer, affiliate):
    url = _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk)
    browser.get(url)
    browser.get(url, REMOTE_ADDR="93.184.215.14", HTTP_USER_AGENT="Mozilla/5.0 Other")
    drain()
    assert list(Click.objects.order_by("id").values_list("is_unique", flat=True)) == [True, False]


def test_same_ip_and_ua_without_cookies_is_not_unique(client, runnable_offer, affiliate):
    url = _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk)
    for _ in range(3):
        client.cookies.clear()
        client.get(url, REMOTE_ADDR=PUBLIC_IP, HTTP_USER_AGENT=BROWSER_UA)
    drain()
    assert list(Click.objects.order_by("id").values_list("is_unique", flat=True)) == [
        True,
        False,
        False,
    ]


def test_other_visitors_are_unique(client, runnable_offer, affiliate):
    url = _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk)
    for ip, ua in [(PUBLIC_IP, BROWSER_UA), ("93.184.215.14", BROWSER_UA), (PUBLIC_IP, "Other/1")]:
        client.cookies.clear()
        client.get(url, REMOTE_ADDR=ip, HTTP_USER_AGENT=ua)
    drain()
    assert list(Click.objects.order_by("id").values_list("is_unique", flat=True)) == [
        True,
        True,
        True,
    ]


def test_uniqueness_is_per_offer_and_affiliate(browser, runnable_offer, affiliate, advertiser):
    other_offer = factories.OfferFactory(advertiser=advertiser, visibility=OfferVisibility.PUBLIC)
    other_affiliate = factories.AffiliateFactory()
    factories.OfferAccessFactory(offer=runnable_offer, affiliate=other_affiliate)
    for offer_id, aff_id in [
        (runnable_offer.pk, affiliate.pk),
        (other_offer.pk, affiliate.pk),
        (runnable_offer.pk, other_affiliate.pk),
        (runnable_offer.pk, affiliate.pk),
    ]:
        browser.get(_click_url(offer_id=offer_id, aff_id=aff_id))
    drain()
    assert list(Click.objects.order_by("id").values_list("is_unique", flat=True)) == [
        True,
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    ("user_agent", "non_browser"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", False),
        ("curl/8.5.0", False),
        ("", True),
        ("   ", True),
    ],
)
def test_bots_are_flagged_not_unique_and_still_redirected(
    client, runnable_offer, affiliate, user_agent, non_browser
):
    response = client.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk, sub1="b"),
        REMOTE_ADDR=PUBLIC_IP,
        HTTP_USER_AGENT=user_agent,
    )
    drain()
    click = Click.objects.get()
    assert (click.is_bot, click.non_browser, click.is_unique) == (True, non_browser, False)
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1=b"
    assert response.cookies["ocpa_cid"].value == click.click_id


def test_missing_user_agent_header_is_a_bot(client, runnable_offer, affiliate):
    client.get(_click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk), REMOTE_ADDR=PUBLIC_IP)
    drain()
    click = Click.objects.get()
    assert (click.user_agent, click.is_bot, click.non_browser, click.is_unique) == (
        "",
        True,
        True,
        False,
    )


def test_a_bot_click_does_not_use_up_the_visitors_unique_click(client, runnable_offer, affiliate):
    url = _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk)
    client.get(url, REMOTE_ADDR=PUBLIC_IP, HTTP_USER_AGENT="")
    client.cookies.clear()
    client.get(url, REMOTE_ADDR=PUBLIC_IP, HTTP_USER_AGENT=BROWSER_UA)
    drain()
    assert list(Click.objects.order_by("id").values_list("is_bot", "is_unique")) == [
        (True, False),
        (False, True),
    ]


def test_clicks_are_recorded_when_redis_is_down(browser, runnable_offer, affiliate, redis_down):
    url = _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk)
    first, second = browser.get(url), browser.get(url)
    assert (first.status_code, second.status_code) == (302, 302)
    # Written straight to PostgreSQL (no drain), enriched on the way. Without Redis the unique
    # check cannot tell; the click still counts and still redirects.
    assert list(
        Click.objects.order_by("id").values_list("click_id", "is_unique", "device_type", "os")
    ) == [
        (first.cookies["ocpa_cid"].value, True, "desktop", "windows"),
        (second.cookies["ocpa_cid"].value, True, "desktop", "windows"),
    ]


# --- the shopper's IP behind proxies -------------------------------------------------------------


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(client, runnable_offer, affiliate):
    client.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk),
        REMOTE_ADDR="93.184.215.14",
        HTTP_X_FORWARDED_FOR=PUBLIC_IP,
        HTTP_USER_AGENT=BROWSER_UA,
    )
    drain()
    click = Click.objects.get()
    assert (click.ip, click.country) == ("93.184.215.14", "US")


def test_x_forwarded_for_from_a_trusted_proxy_is_used(client, runnable_offer, affiliate, settings):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    response = client.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk),
        REMOTE_ADDR="10.1.2.3",
        HTTP_X_FORWARDED_FOR=f"1.2.3.4, {PUBLIC_IP}, 10.9.9.9",
        HTTP_USER_AGENT=BROWSER_UA,
    )
    drain()
    click = Click.objects.get()
    assert (click.ip, click.country) == (PUBLIC_IP, "GB")
    assert response.status_code == 302


@pytest.mark.parametrize(
    "case",
    [
        ("fe80::1%eth0", "", "fe80::1", ""),
        ("127.0.0.1", "fe80::2%eth0", "fe80::2", ""),
        ("::ffff:81.2.69.160", "", PUBLIC_IP, "GB"),
        ("", "", None, ""),
        ("not-an-ip", PUBLIC_IP, None, ""),
    ],
)
def test_odd_client_addresses_are_stored_or_dropped_not_an_error(
    client, runnable_offer, affiliate, case
):
    remote_addr, forwarded, stored, country = case
    response = client.get(
        _click_url(offer_id=runnable_offer.pk, aff_id=affiliate.pk),
        REMOTE_ADDR=remote_addr,
        HTTP_X_FORWARDED_FOR=forwarded,
        HTTP_USER_AGENT=BROWSER_UA,
    )
    assert response.status_code == 302
    drain()
    assert Click.objects.values_list("ip", "country").get() == (stored, country)


# --- the network's own landing page --------------------------------------------------------------


def test_offer_unavailable_page(client):
    response = client.get(NETWORK_FALLBACK)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html"
    assert b"This offer is not available." in response.content
