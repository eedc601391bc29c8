"""The click's HTTP layer, shared by the Django view and the WSGI fast path.

Both adapters hand over a WSGI environ (Django's request.META is one) and get back the redirect,
the cookies and the headers; the WSGI fast path (config/wsgi.py) skips Django's middleware and URL
resolver, which cost more than the click itself.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections

from apps.common.net import client_ip_from_meta
from apps.tracking import services

logger = logging.getLogger(__name__)

VISITOR_COOKIE = "ocpa_vid"
VISITOR_COOKIE_MAX_AGE = 365 * 86400


def offer_click_cookie_name(offer_id: int) -> str:
    """The cookie holding the browser's latest click on this offer, beside the latest click of
    all (settings.CLICK_COOKIE_NAME): a pixel names its offer and reads its own, so a shopper who
    clicked another offer's link since still converts on this one."""
    return f"{settings.CLICK_COOKIE_NAME}_{offer_id}"


@dataclass(frozen=True)
class Cookie:
    name: str
    value: str
    max_age: int
    secure: bool

    def header(self) -> str:
        """A Set-Cookie value; names and values are URL-safe tokens, nothing to quote."""
        attributes = f"{self.name}={self.value}; Max-Age={self.max_age}; Path=/; HttpOnly"
        return attributes + ("; Secure; SameSite=None" if self.secure else "; SameSite=Lax")


@dataclass(frozen=True)
class ClickResponse:
    location: str
    cookies: list[Cookie] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)


def _cookies(meta: Mapping[str, Any]) -> dict[str, str]:
    jar: dict[str, str] = {}
    for part in str(meta.get("HTTP_COOKIE", ""))[:4096].split(";"):
        name, _, value = part.strip().partition("=")
        if name in (VISITOR_COOKIE,):
            jar[name] = value.strip()[:64]
    return jar


def _is_prefetch_or_probe(meta: Mapping[str, Any]) -> bool:
    """HEAD requests and browser prefetches are not a person arriving: redirect, never bill."""
    if meta.get("REQUEST_METHOD") == "HEAD":
        return True
    purpose = str(meta.get("HTTP_SEC_PURPOSE") or meta.get("HTTP_PURPOSE") or "").lower()
    return "prefetch" in purpose or str(meta.get("HTTP_X_MOZ", "")).lower() == "prefetch"


def _is_embedded(meta: Mapping[str, Any]) -> bool:
    """Requested by a page's image, script, iframe… rather than opened by the shopper: current
    browsers say which (Sec-Fetch-Dest); a link the shopper follows is a "document"."""
    destination = str(meta.get("HTTP_SEC_FETCH_DEST", "")).lower()
    return bool(destination) and destination != "document"


def click_respond(
    *, meta: Mapping[str, Any], query: Mapping[str, str] | None, now: datetime, secure: bool
) -> ClickResponse:
    """The answer to one click. `query` is None when the query string could not be parsed (too
    many parameters and the like). Never raises: anything unexpected goes to the network's
    fallback URL and is logged."""
    visitor_id = _cookies(meta).get(VISITOR_COOKIE, "")
    embedded = _is_embedded(meta)
    # Chosen before the click is handled, so the unique-click check knows this browser by it next
    # time (it is only sent when the click counts).
    visitor_id_new = "" if visitor_id else secrets.token_urlsafe(16)
    try:
        if query is None:
            outcome = _network_fallback(services.FallbackReason.BAD_REQUEST)
        else:
            outcome = services.click_handle(
                query=query,
                ip=client_ip_from_meta(meta),
                user_agent=str(meta.get("HTTP_USER_AGENT", "")),
                referrer=str(meta.get("HTTP_REFERER", "")),
                visitor_id=visitor_id,
                visitor_id_new=visitor_id_new,
                now=now,
                non_browser=embedded or _is_prefetch_or_probe(meta),
            )
    except Exception:
        # A click must never fail: a database or Redis hiccup costs the record, not the shopper.
        logger.exception("click failed; sending the shopper to the network fallback")
        close_old_connections()
        outcome = _network_fallback(services.FallbackReason.BAD_REQUEST)
    headers = [("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer-when-downgrade")]
    if not outcome.click_id:
        headers.append(("X-Fallback-Reason", outcome.fallback_reason or ""))
    if not outcome.click_id or embedded:
        # Embedded: an <img>, <script> or <iframe> asked for the link, no shopper chose it
        # (cookie stuffing), so it leaves no click cookie for a pixel to convert later.
        return ClickResponse(outcome.redirect_url, [], headers)
    max_age = outcome.cookie_max_age
    # The latest click of all, and the latest on its offer and (a fallback offer served it) on
    # the offer the link named, whose thank-you page may be the one the shopper reaches.
    names = [settings.CLICK_COOKIE_NAME]
    offers = dict.fromkeys((outcome.offer_id, outcome.origin_offer_id))
    names += [offer_click_cookie_name(offer_id) for offer_id in offers if offer_id]
    cookies = [Cookie(name, outcome.click_id, max_age, secure) for name in names]
    if visitor_id_new:
        cookies.append(Cookie(VISITOR_COOKIE, visitor_id_new, VISITOR_COOKIE_MAX_AGE, secure))
    return ClickResponse(outcome.redirect_url, cookies, headers)


def _network_fallback(reason: str) -> services.ClickOutcome:
    return services.ClickOutcome(services.click_fallback_url(None), fallback_reason=reason)
