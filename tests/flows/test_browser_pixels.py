"""Pixels in a real browser: Debian's chromium, headless, driven by Playwright.

The advertiser's user logs into the admin and copies the offer's pixel code as the page shows it;
the shopper clicks the affiliate's link, lands on the shop, buys, and the thank-you page's pixel
(image, iframe, JavaScript tag) is requested by the browser with the click cookie `/click` set.
Everything on our side is the production server (granian, config.wsgi) on the test database.

The shop runs on another port of 127.0.0.1: the same site as the tracking domain, as when a network
tracks on a subdomain of the advertiser's own (a CNAME). Across sites the cookie must be
`SameSite=None; Secure`, which needs HTTPS (tests/tracking/test_https_proxy.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connections
from playwright.sync_api import Browser, sync_playwright

from apps.accounts.services import advertiser_user_create
from apps.conversions.models import Conversion
from apps.offers.models import OfferVisibility
from tests import factories

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")  # scripts/ensure_chromium.sh
# A desktop Chrome's user agent: headless chromium's own says "HeadlessChrome", a bot.
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0 Safari/537.36"
)


class Shop:
    """The advertiser's site: a landing page, and thank-you pages whose HTML a test sets."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                body = shop.pages.get(path, "<!doctype html><title>Shop</title><h1>Shop</h1>")
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def shop() -> Iterator[Shop]:
    site = Shop()
    yield site
    site.close()


@pytest.fixture
def chromium(monkeypatch) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop on this thread, which Django's ORM takes for an
    # async context; the test's own queries are plain synchronous calls all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            try:
                browser.close()
            finally:
                # Django keeps the connections opened meanwhile apart (per context, not per
                # thread): closed here, or they would hold the test database open at its end.
                connections.close_all()


def _conversion(order_id: str, timeout: float = 20) -> Conversion:
    """The conversion the server records when the browser's pixel request reaches it."""
    deadline = time.monotonic() + timeout
    while (found := Conversion.objects.filter(order_id=order_id).first()) is None:
        assert time.monotonic() < deadline, f"no conversion {order_id}"
        time.sleep(0.1)
    return found


def test_pixel_code_from_the_admin_converts_in_a_real_browser(server, shop, chromium):
    advertiser = factories.AdvertiserFactory()
    offer = factories.OfferFactory(
        advertiser=advertiser,
        visibility=OfferVisibility.PUBLIC,
        destination_url=f"{shop.url}/landing?cid={{click_id}}",
        pixel_methods=["pixel", "iframe", "js"],
    )
    goal = factories.GoalFactory(offer=offer, code="sale", is_repeatable=True)
    affiliate = factories.AffiliateFactory()
    advertiser_user_create(
        username="shop-admin", password="shop-password-123", advertiser_id=advertiser.pk
    )

    # The advertiser's user copies the pixel code from the offer page.
    admin = chromium.new_page()
    admin.goto(f"{server}/admin/login/?next=/admin/offers/offer/{offer.pk}/change/")
    admin.fill("#id_username", "shop-admin")
    admin.fill("#id_password", "shop-password-123")
    admin.click("input[type=submit]")
    admin.wait_for_url(f"**/admin/offers/offer/{offer.pk}/change/")
    code = [text for text in admin.locator("pre").all_inner_texts() if text.startswith("<")]
    assert [snippet.split(" ", 1)[0] for snippet in code] == ["<img", "<iframe", "<script"]

    # The shopper: the affiliate's link, the shop, then a thank-you page per kind of pixel.
    shopper = chromium.new_context(user_agent=CHROME_UA).new_page()
    shopper.goto(f"{server}/click?offer_id={offer.pk}&aff_id={affiliate.pk}")
    assert shopper.url.startswith(f"{shop.url}/landing?cid=")
    click_id = shopper.url.split("cid=", 1)[1]
    for number, snippet in enumerate(code, start=1):
        order_id = f"ORDER-{number}"
        pixel = snippet.replace("AMOUNT", "49.90").replace("ORDER_ID", order_id)
        shop.pages[f"/thank-you/{number}"] = (
            f"<!doctype html><title>Thank you</title><h1>Thank you</h1>{pixel}"
        )
        shopper.goto(f"{shop.url}/thank-you/{number}", wait_until="networkidle")
        conversion = _conversion(order_id)
        assert (conversion.click_id, conversion.offer_id, conversion.goal_id) == (
            click_id,
            offer.pk,
            goal.pk,
        )
        assert (conversion.affiliate_id, conversion.sale_amount) == (affiliate.pk, Decimal("49.90"))

    assert sorted(Conversion.objects.values_list("method", flat=True)) == ["iframe", "js", "pixel"]
