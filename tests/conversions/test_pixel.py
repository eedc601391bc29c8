"""Pixels: `/pixel` (GIF), `/pixel/iframe` (HTML), `/pixel.js` (script) over HTTP.

The click id comes from the click cookie only; the asset is always the answer; the outcome is in
the inbound log and, when accepted, on the conversion with its method.
"""

from __future__ import annotations

import importlib
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from apps.conversions import services
from apps.conversions.models import Conversion, InboundPostbackLog
from apps.conversions.pixel import PIXEL_GIF, PIXEL_HTML, PIXEL_JS
from apps.offers.models import CouponCode, OfferVisibility, PayoutType, PixelMethod
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124 Safari/537.36"
THANK_YOU = "https://shop.example.com/thank-you?order=A-1"

# path -> (asset, content type, conversion method)
PIXELS = {
    "/pixel": (PIXEL_GIF, "image/gif", "pixel"),
    "/pixel/iframe": (PIXEL_HTML, "text/html; charset=utf-8", "iframe"),
    "/pixel.js": (PIXEL_JS, "application/javascript; charset=utf-8", "js"),
}


@pytest.fixture(autouse=True)
def _pixels_taken(offer):
    """The offer takes every kind of pixel (an offer takes none by default)."""
    offer.pixel_methods = list(PixelMethod.values)
    offer.save()


class ThankYouPage(Client):
    """The shopper's browser on the advertiser's thank-you page. Its pixels name their offer
    (`offer_id`), as every pixel snippet does, unless a test gives its own or sets
    `offer_id = None`."""

    offer_id: int | None = None

    def get(self, path, data=None, **extra):
        if path.startswith("/pixel") and "?" not in path and self.offer_id is not None:
            data = {"offer_id": self.offer_id, **(data or {})}
        return super().get(path, data, **extra)


@pytest.fixture
def browser(offer) -> ThankYouPage:
    """A browser from a public IP, on the page of the `offer` fixture's advertiser."""
    page = ThankYouPage(REMOTE_ADDR="81.2.69.160", HTTP_USER_AGENT=UA, HTTP_REFERER=THANK_YOU)
    page.offer_id = offer.pk
    return page


def _with_cookie(browser: Client, click_id: str) -> Client:
    browser.cookies[settings.CLICK_COOKIE_NAME] = click_id
    return browser


def _asset(response, path: str) -> None:
    """Whatever happened, the answer is the asset, uncacheable, loadable from any site."""
    asset, content_type, _ = PIXELS[path]
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response.content == asset
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-cache", "no-store", "must-revalidate", "max-age=0"} <= cache_control
    assert response["Pragma"] == "no-cache"
    assert "Expires" in response
    assert response["Cross-Origin-Resource-Policy"] == "cross-origin"
    assert "Set-Cookie" not in response


def _logged(path: str, result: str, reason: str, http_status: int) -> InboundPostbackLog:
    log = InboundPostbackLog.objects.get()
    assert (log.method, log.path, log.result, log.reason, log.http_status) == (
        "GET",
        path,
        result,
        reason,
        http_status,
    )
    return log


# --- accepted -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(PIXELS))
def test_pixel_with_the_click_cookie_records_the_conversion(browser, click, goal, path):
    response = _with_cookie(browser, click.click_id).get(path, {"order_id": "P-1", "adv1": "crm"})

    _asset(response, path)
    conversion = Conversion.objects.get()
    assert (conversion.click_id, conversion.goal, conversion.order_id, conversion.adv1) == (
        click.click_id,
        goal,
        "P-1",
        "crm",
    )
    assert (conversion.status, conversion.payout) == ("approved", Decimal("2.50"))
    assert conversion.method == PIXELS[path][2]
    log = _logged(path, "accepted", "", 200)
    assert log.conversion == conversion
    assert log.advertiser == click.offer.advertiser
    assert log.click_id == click.click_id
    assert log.params == {
        "click_id": click.click_id,
        "offer_id": str(click.offer_id),
        "order_id": "P-1",
        "adv1": "crm",
    }
    assert log.headers == {"user-agent": UA, "referer": THANK_YOU}
    assert log.ip == "81.2.69.160"


def test_pixel_goal_amount_and_status(browser, click, goal):
    factories.GoalFactory(
        offer=goal.offer,
        code="sale",
        is_default=False,
        payout_type=PayoutType.PERCENT,
        revenue_type=PayoutType.PERCENT,
        payout=Decimal("10"),
        revenue=Decimal("15"),
    )
    _with_cookie(browser, click.click_id).get(
        "/pixel",
        {"goal": "sale", "amount": "49.90", "order_id": "S-9", "status": "pending"},
    )
    conversion = Conversion.objects.get()
    assert (conversion.goal.code, conversion.sale_amount, conversion.payout) == (
        "sale",
        Decimal("49.90"),
        Decimal("4.99"),
    )
    assert (conversion.order_id, conversion.status) == ("S-9", "pending")


def test_the_page_loaded_twice_is_one_conversion(browser, click):
    _with_cookie(browser, click.click_id)
    for _ in range(2):
        _asset(browser.get("/pixel", {"order_id": "R-1"}), "/pixel")
    conversion = Conversion.objects.get()
    assert list(InboundPostbackLog.objects.order_by("id").values_list("result", "conversion")) == [
        ("accepted", conversion.pk),
        ("duplicate", conversion.pk),
    ]


def test_no_token_needed_when_the_advertiser_requires_one_of_postbacks(browser, click):
    advertiser = click.offer.advertiser
    advertiser.require_token = True
    advertiser.save()
    _with_cookie(browser, click.click_id).get("/pixel.js")
    assert Conversion.objects.get().method == "js"


def test_click_cookie_set_by_click_is_what_the_pixel_uses(browser, offer, affiliate, goal):
    """End to end in one browser: /click sets the cookie, the thank-you page's pixel sends it
    back; the click is still in the Redis buffer (not drained) and is found there."""
    offer.visibility = OfferVisibility.PUBLIC
    offer.save()
    redirect = browser.get("/click", {"offer_id": offer.pk, "aff_id": affiliate.pk})
    assert redirect.status_code == 302
    click_id = redirect.cookies[settings.CLICK_COOKIE_NAME].value

    assert redirect.cookies[f"ocpa_cid_{offer.pk}"].value == click_id
    # The shopper clicks another offer's link before buying here: the latest click of all is
    # that one, this offer's own cookie still holds the click this pixel converts.
    other = factories.OfferFactory(visibility=OfferVisibility.PUBLIC)
    assert browser.get("/click", {"offer_id": other.pk, "aff_id": affiliate.pk}).status_code == 302
    assert browser.cookies[settings.CLICK_COOKIE_NAME].value != click_id

    _asset(browser.get("/pixel", {"order_id": "E2E-1"}), "/pixel")
    conversion = Conversion.objects.get()
    assert (conversion.click_id, conversion.offer, conversion.affiliate, conversion.method) == (
        click_id,
        offer,
        affiliate,
        "pixel",
    )


def test_a_click_from_before_the_offers_own_cookie_is_read_from_the_latest(browser, click):
    """Clicks made before /click set a cookie per offer are in the latest-click cookie only."""
    _with_cookie(browser, click.click_id).get("/pixel", {"order_id": "OLD-1"})
    assert Conversion.objects.get().click_id == click.click_id


# --- refused: still the asset, the reason in the log ---------------------------------------------


@pytest.mark.parametrize("path", list(PIXELS))
def test_no_cookie_is_missing_click_id(browser, click, path):
    _asset(browser.get(path, {"order_id": "N-1"}), path)
    assert Conversion.objects.count() == 0
    log = _logged(path, "rejected", "missing_click_id", 400)
    # In the debugger of the advertiser whose page it is (browsers that block third-party
    # cookies show up here).
    assert (log.click_id, log.advertiser, log.order_id) == ("", click.offer.advertiser, "N-1")


@pytest.mark.parametrize("name", ["click_id", "transaction_id", "clickid", "cid"])
def test_a_click_id_in_the_query_is_ignored(browser, click, name):
    """Only the cookie says which click converted: a pixel URL is public."""
    _asset(browser.get("/pixel", {name: click.click_id}), "/pixel")
    assert Conversion.objects.count() == 0
    _logged("/pixel", "rejected", "missing_click_id", 400)


def test_the_cookie_wins_over_a_click_id_in_the_query(browser, click):
    other = factories.ClickFactory(offer=click.offer)
    _with_cookie(browser, click.click_id).get("/pixel", {"transaction_id": other.click_id})
    assert Conversion.objects.get().click_id == click.click_id


@pytest.mark.parametrize("cookie", ["clk-does-not-exist", "x" * 300, "' OR 1=1 --", "{click_id}"])
def test_unknown_click_cookie(browser, click, cookie):
    _asset(_with_cookie(browser, cookie).get("/pixel", {}), "/pixel")
    assert Conversion.objects.count() == 0
    log = _logged("/pixel", "rejected", "unknown_click", 404)
    assert len(log.click_id) <= 64


def test_a_coupon_code_without_a_cookie_is_refused(browser, goal, affiliate):
    """Coupon codes are public (affiliates publish them): in a pixel, which carries no secret,
    one would let anyone report sales for the code's affiliate."""
    CouponCode.objects.create(offer=goal.offer, affiliate=affiliate, code="SUMMER10")
    _asset(browser.get("/pixel", {"coupon_code": "summer10", "order_id": "C-1"}), "/pixel")
    assert Conversion.objects.count() == 0
    _logged("/pixel", "rejected", "missing_click_id", 400)


@pytest.mark.parametrize("path", list(PIXELS))
def test_an_offer_takes_no_pixel_by_default(browser, click, offer, path):
    """Any browser with a click cookie of the offer could fire a pixel: an offer whose
    advertiser sends server postbacks takes none."""
    offer.pixel_methods = []
    offer.save()
    _asset(_with_cookie(browser, click.click_id).get(path, {"order_id": "N-1"}), path)
    assert Conversion.objects.count() == 0
    log = _logged(path, "rejected", "pixel_not_enabled", 403)
    assert (log.click_id, log.advertiser) == (click.click_id, offer.advertiser)
    assert factories.OfferFactory().pixel_methods == []


def test_an_offer_takes_only_the_pixels_it_names(browser, click, offer):
    offer.pixel_methods = ["iframe"]
    offer.save()
    _with_cookie(browser, click.click_id)
    _asset(browser.get("/pixel", {"order_id": "I-1"}), "/pixel")
    _asset(browser.get("/pixel.js", {"order_id": "I-1"}), "/pixel.js")
    assert Conversion.objects.count() == 0
    _asset(browser.get("/pixel/iframe", {"order_id": "I-1"}), "/pixel/iframe")
    assert Conversion.objects.get().method == "iframe"
    assert list(InboundPostbackLog.objects.order_by("id").values_list("reason", flat=True)) == [
        "pixel_not_enabled",
        "pixel_not_enabled",
        "",
    ]


@pytest.mark.parametrize("name", ["token", "security_token", "verification_token"])
def test_the_postback_token_in_a_pixel_is_refused(browser, click, name):
    """Whoever reads the page could use the token on /postback, where it approves: the pixel is
    refused, so the advertiser sees why in the log and rotates the token."""
    _asset(
        _with_cookie(browser, click.click_id).get("/pixel", {name: TOKEN, "order_id": "T-1"}),
        "/pixel",
    )
    assert Conversion.objects.count() == 0
    log = _logged("/pixel", "rejected", "token_exposed", 403)
    assert log.params[name] == "***"
    assert log.advertiser == click.offer.advertiser  # in its own postback debugger
    assert log.click_id == ""  # the browser's click may be another advertiser's
    assert "click_id" not in log.params


@pytest.mark.parametrize("pixels", [[], ["pixel"]])
def test_any_advertisers_token_is_refused_before_anything_else(browser, offer, pixels):
    """Before the cookie, the offer or its pixel settings: a legacy pixel that still carries a
    token says so, on an offer that takes no pixels and from a browser with no click too."""
    from apps.advertisers.services import advertiser_rotate_postback_token

    offer.pixel_methods = pixels
    offer.save()
    other = factories.AdvertiserFactory()
    advertiser_rotate_postback_token(advertiser=other, token="other-advertisers-token")
    browser.offer_id = None
    _asset(browser.get("/pixel", {"token": "other-advertisers-token"}), "/pixel")
    log = _logged("/pixel", "rejected", "token_exposed", 403)
    assert log.advertiser == other


@pytest.mark.parametrize("offer_id", [None, "", "not-a-number", "-1", "1.0", "١٢", "9" * 30])
def test_a_pixel_must_name_its_offer(browser, click, offer_id):
    """Without an offer the browser's latest click (any advertiser's) is not even looked at:
    the row has no click and no advertiser (staff see it)."""
    browser.offer_id = None
    query = {"order_id": "O-1"} if offer_id is None else {"offer_id": offer_id, "order_id": "O-1"}
    _asset(_with_cookie(browser, click.click_id).get("/pixel", query), "/pixel")
    assert Conversion.objects.count() == 0
    log = _logged("/pixel", "rejected", "missing_offer_id", 400)
    assert (log.click_id, log.advertiser) == ("", None)


def test_an_offer_we_do_not_have(browser, click):
    browser.offer_id = 999_999_999
    _asset(_with_cookie(browser, click.click_id).get("/pixel"), "/pixel")
    log = _logged("/pixel", "rejected", "unknown_offer", 404)
    assert (log.click_id, log.advertiser) == ("", None)
    assert "click_id" not in log.params


def test_a_click_on_another_offer_does_not_convert_here(browser, click):
    """A pixel on advertiser B's page, with the shopper's latest click on A's offer in the
    cookie: the sale is not A's (nor A's affiliate's), and B's debugger gets the row without
    A's click."""
    other = factories.OfferFactory(pixel_methods=["pixel"])
    browser.offer_id = None
    _asset(
        _with_cookie(browser, click.click_id).get("/pixel", {"oid": other.pk, "order_id": "B-1"}),
        "/pixel",
    )
    assert Conversion.objects.count() == 0
    log = _logged("/pixel", "rejected", "click_of_another_offer", 400)
    assert (log.click_id, log.advertiser) == ("", other.advertiser)
    assert "click_id" not in log.params and click.click_id not in str(log.params)


def test_the_offers_own_cookie_wins_over_the_latest_click(browser, click, offer):
    later = factories.ClickFactory(offer=factories.OfferFactory(pixel_methods=["pixel"]))
    browser.cookies[settings.CLICK_COOKIE_NAME] = later.click_id
    browser.cookies[f"{settings.CLICK_COOKIE_NAME}_{offer.pk}"] = click.click_id
    _asset(browser.get("/pixel", {"order_id": "OWN-1"}), "/pixel")
    assert (Conversion.objects.get().click_id, Conversion.objects.get().offer) == (
        click.click_id,
        offer,
    )


def test_a_click_a_fallback_offer_served_converts_through_the_named_offers_pixel(
    browser, offer, affiliate
):
    """The link named `offer`; its fallback offer (the same advertiser's) served the click. The
    shopper's thank-you page fires the pixel of the offer the link named."""
    served_by = factories.OfferFactory(advertiser=offer.advertiser, pixel_methods=["pixel"])
    factories.GoalFactory(offer=served_by, code="lead")
    click = factories.ClickFactory(offer=served_by, affiliate=affiliate, origin_offer_id=offer.pk)
    browser.cookies[f"{settings.CLICK_COOKIE_NAME}_{offer.pk}"] = click.click_id
    _asset(browser.get("/pixel", {"order_id": "FB-1"}), "/pixel")
    conversion = Conversion.objects.get()
    assert (conversion.click_id, conversion.offer) == (click.click_id, served_by)


def test_a_fallback_offer_moved_to_another_advertiser_does_not_convert_through_the_link_offer(
    browser, offer, affiliate
):
    """Offer.clean keeps a fallback offer the same advertiser's, but only when the linking offer
    is saved: a fallback offer moved since is another advertiser's, and so is its click."""
    served_by = factories.OfferFactory(pixel_methods=["pixel"])  # another advertiser
    factories.GoalFactory(offer=served_by, code="lead")
    click = factories.ClickFactory(offer=served_by, affiliate=affiliate, origin_offer_id=offer.pk)
    browser.cookies[f"{settings.CLICK_COOKIE_NAME}_{offer.pk}"] = click.click_id
    _asset(browser.get("/pixel", {"order_id": "FB-2"}), "/pixel")
    assert Conversion.objects.count() == 0
    log = _logged("/pixel", "rejected", "click_of_another_offer", 400)
    assert (log.click_id, log.advertiser, "click_id" in log.params) == ("", offer.advertiser, False)


def test_an_advertiser_with_an_ip_allowlist_gets_no_pixels(browser, click):
    """Its conversions come from its servers: a browser calls from the shopper's IP."""
    advertiser = click.offer.advertiser
    advertiser.ip_allowlist = ["203.0.113.0/24"]
    advertiser.save()
    _asset(_with_cookie(browser, click.click_id).get("/pixel"), "/pixel")
    assert Conversion.objects.count() == 0
    _logged("/pixel", "rejected", "ip_not_allowed", 403)


def test_an_advertiser_that_requires_signatures_gets_no_pixels(browser, click):
    """A browser cannot sign; signature headers sent to a pixel are neither checked nor logged."""
    from apps.advertisers.services import advertiser_rotate_signing_secret

    advertiser = click.offer.advertiser
    advertiser_rotate_signing_secret(advertiser=advertiser)
    advertiser.require_signature = True
    advertiser.save()
    response = _with_cookie(browser, click.click_id).get(
        "/pixel",
        headers={"X-OpenCPA-Timestamp": str(int(time.time())), "X-OpenCPA-Signature": "v1=00"},
    )
    _asset(response, "/pixel")
    assert Conversion.objects.count() == 0
    log = _logged("/pixel", "rejected", "signature_required", 403)
    assert "x-opencpa-signature" not in log.headers


def test_a_token_that_is_not_the_advertisers_is_ignored(browser, click):
    _with_cookie(browser, click.click_id).get("/pixel", {"token": "{token}"})
    assert Conversion.objects.get().method == "pixel"


def test_signature_headers_sent_to_a_pixel_are_ignored(browser, click):
    """A browser cannot sign: signature headers are neither checked nor logged."""
    response = _with_cookie(browser, click.click_id).get(
        "/pixel",
        headers={"X-OpenCPA-Timestamp": str(int(time.time())), "X-OpenCPA-Signature": "v1=00"},
    )
    _asset(response, "/pixel")
    log = _logged("/pixel", "accepted", "", 200)
    assert "x-opencpa-signature" not in log.headers


def test_invalid_amount(browser, click):
    _asset(
        _with_cookie(browser, click.click_id).get("/pixel", {"amount": "1.234,56"}),
        "/pixel",
    )
    assert Conversion.objects.count() == 0
    _logged("/pixel", "rejected", "invalid_amount", 400)


def test_too_many_parameters(browser, click):
    query = "&".join(f"f{i}=1" for i in range(300))
    _asset(_with_cookie(browser, click.click_id).get(f"/pixel?{query}"), "/pixel")
    assert Conversion.objects.count() == 0
    _logged("/pixel", "rejected", "malformed_request", 400)


def test_an_internal_failure_still_answers_the_asset(browser, click, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services, "postback_process", broken)
    _asset(_with_cookie(browser, click.click_id).get("/pixel.js", {}), "/pixel.js")
    assert Conversion.objects.count() == 0
    assert "pixel conversion failed" in caplog.text


# --- what is not a page view ----------------------------------------------------------------------


@pytest.mark.parametrize("path", list(PIXELS))
def test_head_answers_without_recording(browser, click, path):
    response = _with_cookie(browser, click.click_id).head(path, {})
    assert response.status_code == 200
    assert response["Content-Type"] == PIXELS[path][1]
    assert Conversion.objects.count() == 0
    assert InboundPostbackLog.objects.count() == 0


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_other_methods_are_not_allowed(browser, click, method):
    response = getattr(_with_cookie(browser, click.click_id), method)("/pixel")
    assert response.status_code == 405
    assert Conversion.objects.count() == 0
    assert InboundPostbackLog.objects.count() == 0


def test_the_iframe_may_be_framed_and_runs_nothing(browser, click):
    response = browser.get("/pixel/iframe")
    assert "X-Frame-Options" not in response
    assert response["Content-Security-Policy"] == "default-src 'none'"
    assert b"<script" not in response.content


def test_the_image_pixel_is_a_valid_1x1_gif():
    assert PIXEL_GIF.startswith(b"GIF89a")
    assert int.from_bytes(PIXEL_GIF[6:8], "little") == 1  # width
    assert int.from_bytes(PIXEL_GIF[8:10], "little") == 1  # height
    assert PIXEL_GIF.endswith(b";")


@pytest.mark.parametrize("path", list(PIXELS))
def test_a_pixel_cannot_approve_what_the_goal_leaves_pending(browser, click, goal, path):
    """A pixel's URL is public on the advertiser's page, and any browser that
    clicked can call it with what it likes: `status=approved` must not skip the review a goal
    whose conversions start pending asks for."""
    goal.default_status = "pending"
    goal.save()
    _asset(
        _with_cookie(browser, click.click_id).get(path, {"order_id": "P-1", "status": "approved"}),
        path,
    )
    assert Conversion.objects.get().status == "pending"


def test_a_pixel_may_still_hold_or_reject_its_own_conversion(browser, click, goal):
    _with_cookie(browser, click.click_id).get("/pixel", {"order_id": "P-2", "status": "rejected"})
    assert Conversion.objects.get().status == "rejected"


def test_a_pixel_fired_again_cannot_move_a_conversion_on(browser, click, goal):
    """The advertiser's server recorded the order pending; the same order fired again from a
    browser with status=approved is a duplicate, and the conversion stays pending."""
    goal.default_status = "pending"
    goal.save()
    answer = services.postback_process(
        raw={"click_id": click.click_id, "order_id": "P-3", "token": TOKEN},
        request_ip="203.0.113.9",
        method="GET",
        path="/postback",
        now=timezone.now(),
    )
    assert (answer.result, answer.conversion.status) == ("accepted", "pending")
    _with_cookie(browser, click.click_id).get("/pixel", {"order_id": "P-3", "status": "approved"})
    assert Conversion.objects.get().status == "pending"
    assert InboundPostbackLog.objects.order_by("-id").values_list("result", flat=True)[0] == (
        "duplicate"
    )


def test_offers_that_took_pixels_keep_taking_them_after_the_upgrade(click, offer, goal):
    """The data migration that comes with pixel_methods: an offer with pixel conversions keeps
    those kinds of pixel, beside any already ticked; the others start with none."""
    from django.apps import apps as current_apps

    migration = importlib.import_module("apps.conversions.migrations.0011_offers_keep_their_pixels")
    offer.pixel_methods = ["pixel"]  # ticked by staff since offers 0008: kept
    offer.save()
    untouched = factories.OfferFactory()
    factories.ConversionFactory(click=click, goal=goal, method="js", order_id="M-1")
    factories.ConversionFactory(click=click, goal=goal, method="iframe", order_id="M-2")
    factories.ConversionFactory(click=click, goal=goal, method="postback", order_id="M-3")

    migration.offers_keep_their_pixels(current_apps, None)
    offer.refresh_from_db()
    untouched.refresh_from_db()
    assert (offer.pixel_methods, untouched.pixel_methods) == (["pixel", "iframe", "js"], [])


def test_the_pixel_code_the_offer_page_gives_converts(browser, click, offer, goal):
    """The snippet from the admin's offer page, with the advertiser's values filled in, fired
    by a browser that clicked."""
    import html
    import re

    from apps.offers.selectors import offer_tracking_code

    snippet = dict(offer_tracking_code(offer=offer))["Image pixel, on the thank-you page"]
    url = html.unescape(re.search(r'src="([^"]+)"', snippet).group(1))
    url = url.replace("AMOUNT", "19.99").replace("ORDER_ID", "SNIP-1")
    browser.offer_id = None  # the snippet names it
    _asset(
        _with_cookie(browser, click.click_id).get(url.removeprefix("http://testserver")), "/pixel"
    )
    conversion = Conversion.objects.get()
    assert (conversion.offer, conversion.goal, conversion.order_id, conversion.method) == (
        offer,
        goal,
        "SNIP-1",
        "pixel",
    )
    assert conversion.sale_amount == Decimal("19.99")
