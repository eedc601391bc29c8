"""Pixels: `GET /pixel` (1x1 GIF), `/pixel/iframe` (an empty HTML page), `/pixel.js` (a script).

The advertiser puts one of them on its thank-you page; the shopper's browser requests it from our
tracking domain and so sends the click cookies that `/click` set. A pixel names its offer
(`offer_id`, or Everflow's `oid`) and reads that offer's own cookie (tracking.http.
offer_click_cookie_name), else the latest click of all (settings.CLICK_COOKIE_NAME), which must
then be a click of that offer (`click_of_another_offer` otherwise: the shopper's latest click may
be on another advertiser's offer). The other parameters are the postback's (goal, amount,
order_id, status, adv1…adv5, and their aliases) minus the click id, which only a cookie gives: a
click id in the query is ignored. With no cookie the call is logged as rejected,
`missing_click_id`; with no offer, `missing_offer_id` (`unknown_offer` for one we do not have).
The log row is the named offer's advertiser's, without the click id when the click is another
offer's. A click served by a fallback offer of the same advertiser converts through a pixel
naming either offer (on the serving offer, with its settings and goals).

The answer is always the asset (200, no-cache), whatever the outcome, so a refused conversion never
shows as a broken image or a script error on the advertiser's page; the outcome goes to the
inbound postback log like a postback's, with the method (pixel, iframe, js) on the conversion.

`/pixel.js` is a JavaScript tag (`<script src="https://track.example.com/pixel.js?offer_id=12&
goal=sale&amount=49.90&order_id=A-1"></script>`): the browser's request for the script is the
conversion, recorded by the server before it answers, and the script itself does nothing.

Security: a pixel's URL is public in the advertiser's page, so it carries no secret, and an offer
takes only the pixels its `pixel_methods` name (none by default: server postbacks only). What
proves a pixel is the click cookie alone: only a browser that clicked can convert its own click,
so a pixel never converts by coupon code (codes are public), and a click an <img>, <script> or
<iframe> requested (cookie stuffing) sets no cookie (tracking.http). Any advertiser's postback
token in a pixel is refused first (`token_exposed`, on that advertiser's log row), to be rotated
before a reader of the page uses it on /postback. A browser cannot sign and calls from the
shopper's IP, so an advertiser that requires signatures or has an IP allowlist gets no pixels. A
browser that clicked may still send what it likes, so a pixel's `status` can hold or reject a
conversion but never approve one the goal leaves pending, and a pixel fired again for a recorded
order is a duplicate that moves nothing (services.BROWSER_METHODS). Server postbacks are the
stronger method.

Browsers that block third-party cookies do not send the cookie to a pixel on another site: the
cookie is only sent cross-site when it was set over HTTPS (SameSite=None; Secure).
"""

from __future__ import annotations

import base64
import logging

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_safe

from apps.advertisers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from apps.common.net import client_ip
from apps.common.text import digits_int
from apps.conversions import services
from apps.conversions.models import ConversionMethod
from apps.conversions.params import CLICK_ID_NAMES, LOGGED_HEADERS, param_value
from apps.conversions.views import inbound_request, request_log_unparsed
from apps.tracking.http import offer_click_cookie_name

logger = logging.getLogger(__name__)

# The smallest transparent 1x1 GIF (43 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HTML = b"<!doctype html><html><head><meta charset=utf-8><title></title></head></html>\n"
PIXEL_JS = b"/* OpenCPA: the conversion was recorded when this script was requested. */\n"

# A browser cannot sign, so a pixel is never checked as signed.
_PIXEL_HEADERS = tuple(h for h in LOGGED_HEADERS if h not in (SIGNATURE_HEADER, TIMESTAMP_HEADER))


def pixel_conversion_record(request: HttpRequest, *, via: ConversionMethod) -> None:
    """Record the conversion a pixel reports, with the click id from the cookie; the outcome
    goes to the inbound log."""
    ip = client_ip(request)
    try:
        query = {key: request.GET.get(key, "") for key in request.GET}
    except SuspiciousOperation:  # too many parameters and the like
        request_log_unparsed(request, ip=ip, body=b"", reason="malformed_request", status=400)
        return
    raw = {key: value for key, value in query.items() if key not in CLICK_ID_NAMES}
    # The browser's latest click on the offer the pixel names; clicks made before that cookie
    # existed are in the latest-click-of-all cookie (services checks the click is the offer's).
    # A pixel that names no offer gets no click: the latest one may be any advertiser's.
    offer_id = digits_int(param_value(raw, "offer_id"))
    click_id = ""
    if offer_id is not None:
        click_id = request.COOKIES.get(offer_click_cookie_name(offer_id), "")
        click_id = click_id or request.COOKIES.get(settings.CLICK_COOKIE_NAME, "")
    if click_id:
        raw = {"click_id": click_id, **raw}
    services.postback_process(
        raw=raw,
        request_ip=ip,
        method=request.method or "GET",
        path=request.path,
        now=timezone.now(),
        request=inbound_request(request, body=b"", headers=_PIXEL_HEADERS),
        via=via,
    )


def _pixel_answer(
    request: HttpRequest, *, via: ConversionMethod, content: bytes, content_type: str
) -> HttpResponse:
    # HEAD is a probe or a prefetch, not a page view: the asset, nothing recorded.
    if request.method == "GET":
        try:
            pixel_conversion_record(request, via=via)
        except Exception:
            # The advertiser's page must never show a broken pixel: a database or Redis hiccup
            # costs the record (and is logged here), not the page.
            logger.exception("pixel conversion failed; answering the asset anyway")
    response = HttpResponse(content, content_type=content_type)
    add_never_cache_headers(response)
    response["Pragma"] = "no-cache"
    # Loadable from any site's page, including one that isolates itself (COEP).
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@require_safe
def pixel_image(request: HttpRequest) -> HttpResponse:
    """`GET /pixel`: `<img src="…/pixel?offer_id=…&goal=…&order_id=…" width=1 height=1>`."""
    return _pixel_answer(
        request, via=ConversionMethod.PIXEL, content=PIXEL_GIF, content_type="image/gif"
    )


@xframe_options_exempt  # it is meant to be framed by the advertiser's page
@require_safe
def pixel_iframe(request: HttpRequest) -> HttpResponse:
    """`GET /pixel/iframe`: `<iframe src="…/pixel/iframe?…" width=1 height=1 frameborder=0>`."""
    response = _pixel_answer(
        request,
        via=ConversionMethod.IFRAME,
        content=PIXEL_HTML,
        content_type="text/html; charset=utf-8",
    )
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


@require_safe
def pixel_js(request: HttpRequest) -> HttpResponse:
    """`GET /pixel.js`: `<script src="…/pixel.js?…"></script>`; a no-op script (see above)."""
    return _pixel_answer(
        request,
        via=ConversionMethod.JS,
        content=PIXEL_JS,
        content_type="application/javascript; charset=utf-8",
    )
