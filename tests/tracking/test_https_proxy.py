"""The click cookie behind a TLS-terminating proxy: pixels on the advertiser's pages read it in a
third-party context, which browsers allow only for `SameSite=None; Secure` cookies. Only a proxy
in TRUSTED_PROXIES may say the shopper came over HTTPS."""

from __future__ import annotations

import io
import ipaddress
import sys
from urllib.parse import urlencode

import pytest

from config.wsgi import application
from tests.tracking.conftest import BROWSER_UA, PUBLIC_IP

pytestmark = pytest.mark.django_db

PROXY_IP = "10.0.0.5"


def _wsgi_click(offer_id: int, aff_id: int, **environ: str) -> tuple[str, list[str]]:
    """One GET /click through the production WSGI entry point (the fast path, not Django)."""
    answer: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None) -> None:
        answer.update(status=status, headers=headers)

    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/click",
        "QUERY_STRING": urlencode({"offer_id": offer_id, "aff_id": aff_id}),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": PUBLIC_IP,
        "HTTP_USER_AGENT": BROWSER_UA,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }
    b"".join(application({**base, **environ}, start_response))
    headers = answer["headers"]
    assert isinstance(headers, list)
    cookies = [value for name, value in headers if name == "Set-Cookie"]
    return str(answer["status"]), cookies


def _click_cookie(cookies: list[str]) -> str:
    return next(cookie for cookie in cookies if cookie.startswith("ocpa_cid="))


def test_a_trusted_proxy_saying_https_gets_a_third_party_cookie(
    runnable_offer, affiliate, settings
):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    status, cookies = _wsgi_click(
        runnable_offer.pk,
        affiliate.pk,
        REMOTE_ADDR=PROXY_IP,
        HTTP_X_FORWARDED_FOR=PUBLIC_IP,
        HTTP_X_FORWARDED_PROTO="https",
    )
    assert status.startswith("302")
    cookie = _click_cookie(cookies)
    assert "; Secure; SameSite=None" in cookie


def test_anyone_else_saying_https_is_ignored(runnable_offer, affiliate, settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    _, cookies = _wsgi_click(runnable_offer.pk, affiliate.pk, HTTP_X_FORWARDED_PROTO="https")
    cookie = _click_cookie(cookies)
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_the_proxy_value_is_the_right_most_one(runnable_offer, affiliate, settings):
    """A client's own X-Forwarded-Proto comes first; the proxy appends what it saw."""
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    _, cookies = _wsgi_click(
        runnable_offer.pk,
        affiliate.pk,
        REMOTE_ADDR=PROXY_IP,
        HTTP_X_FORWARDED_PROTO="https, http",
    )
    assert "SameSite=Lax" in _click_cookie(cookies)


def test_the_django_view_agrees(browser, runnable_offer, affiliate, settings):
    """runserver and the tests go through the Django view: same rule."""
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    url = "/click?" + urlencode({"offer_id": runnable_offer.pk, "aff_id": affiliate.pk})
    response = browser.get(url, REMOTE_ADDR=PROXY_IP, HTTP_X_FORWARDED_PROTO="https")
    cookie = response.cookies["ocpa_cid"]
    assert (cookie["secure"], cookie["samesite"]) == (True, "None")
    plain = browser.get(url, HTTP_X_FORWARDED_PROTO="https")
    assert plain.cookies["ocpa_cid"]["samesite"] == "Lax"
