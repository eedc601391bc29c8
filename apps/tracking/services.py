"""The click: decide where it goes from the in-process catalog, record it with one Redis round
trip, build the redirect. No PostgreSQL query once the catalog is warm; no PostgreSQL write unless
Redis is down."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.conf import settings

from apps.common.text import digits_int, text_clean
from apps.offers.caps import cap_counter_key
from apps.tracking import catalog, click_store
from apps.tracking.buffer import CapCounter, click_buffer_append, click_buffer_append_unbilled
from apps.tracking.catalog import OfferSnapshot
from apps.tracking.click_ids import click_id_new
from apps.tracking.enrichment import click_enrich, country_for_ip, device_for_user_agent
from apps.tracking.macros import REDIRECT_MAX_LENGTH, macro_render

logger = logging.getLogger(__name__)

# Canonical name -> accepted names, canonical first. Links from other platforms keep working.
PARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "offer_id": ("offer_id", "oid", "o"),
    "aff_id": ("aff_id", "affid", "pid", "a"),
    "sub1": ("sub1", "aff_sub", "aff_sub1", "sub_id1"),
    "sub2": ("sub2", "aff_sub2", "sub_id2"),
    "sub3": ("sub3", "aff_sub3", "sub_id3"),
    "sub4": ("sub4", "aff_sub4", "sub_id4"),
    "sub5": ("sub5", "aff_sub5", "sub_id5"),
    "source_id": ("source_id", "source"),
    "aff_click_id": ("aff_click_id",),
    "creative_id": ("creative_id",),
    "url_id": ("url_id",),
}
SUB_MAX_LENGTH = 255
# How many fallback offers a click may pass through before it goes to a fallback URL.
MAX_FALLBACK_OFFERS = 3


class FallbackReason:
    MISSING_IDS = "missing_ids"
    UNKNOWN_OFFER = "unknown_offer"
    UNKNOWN_AFFILIATE = "unknown_affiliate"
    NOT_RUNNABLE = "not_runnable"  # paused offer, inactive affiliate or no access
    BAD_REQUEST = "bad_request"  # unparseable request, or subs that make the redirect too long
    BAD_DESTINATION = "bad_destination"  # the offer's destination is not an http(s) URL
    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    DEVICE_NOT_ALLOWED = "device_not_allowed"
    OS_NOT_ALLOWED = "os_not_allowed"
    CLICK_CAP_REACHED = "click_cap_reached"


@dataclass(frozen=True)
class ClickOutcome:
    redirect_url: str
    click_id: str | None = None
    offer_id: int | None = None  # the click's offer (a fallback offer's, when it went there)
    origin_offer_id: int | None = None  # the offer the link named, when a fallback served it
    cookie_max_age: int = 0
    fallback_reason: str | None = None


def click_params_parse(query: Mapping[str, str]) -> dict[str, str]:
    """Canonical click parameters from a query string in any supported dialect, cleaned."""
    params: dict[str, str] = {}
    for canonical, names in PARAM_ALIASES.items():
        for name in names:
            value = query.get(name)
            if value:
                params[canonical] = text_clean(value, SUB_MAX_LENGTH)
                break
        else:
            params[canonical] = ""
    return params


def _positive_int(value: str) -> int | None:
    number = digits_int(value)
    return number if number else None


def click_fallback_url(offer: OfferSnapshot | None) -> str:
    if offer is not None and offer.fallback_url:
        return offer.fallback_url
    return str(settings.NETWORK_FALLBACK_URL)


@dataclass
class _Visit:
    """What we know of this click before any offer is chosen."""

    affiliate_id: int
    affiliate_active: bool
    params: dict[str, str]
    ip: str | None
    country: str
    user_agent: str
    referrer: str
    visitors: list[str]
    non_browser: bool
    now: datetime

    def record(self, offer_id: int, click_id: str, **extra: Any) -> dict[str, Any]:
        params = self.params
        return {
            "click_id": click_id,
            "offer_id": offer_id,
            "affiliate_id": self.affiliate_id,
            "created_at": self.now.isoformat(),
            "ip": self.ip,
            "country": self.country,
            "user_agent": self.user_agent,
            "referrer": self.referrer,
            "non_browser": self.non_browser,
            **{f"sub{n}": params[f"sub{n}"] for n in range(1, 6)},
            "source_id": params["source_id"],
            "aff_click_id": params["aff_click_id"],
            "creative_id": params["creative_id"][:64],
            "url_id": params["url_id"][:64],
            **extra,
        }


def _refusal(offer: OfferSnapshot, visit: _Visit) -> str | None:
    """Why this offer cannot take this click (targeting, status, access), or None."""
    if not (offer.is_active and visit.affiliate_active):
        return FallbackReason.NOT_RUNNABLE
    if not catalog.access_allows(offer, visit.affiliate_id):
        return FallbackReason.NOT_RUNNABLE
    if offer.allowed_countries and visit.country not in offer.allowed_countries:
        return FallbackReason.COUNTRY_NOT_ALLOWED
    if visit.country and visit.country in offer.blocked_countries:
        return FallbackReason.COUNTRY_NOT_ALLOWED
    if offer.needs_device:
        device = device_for_user_agent(visit.user_agent)
        if offer.allowed_devices and device.device_type not in offer.allowed_devices:
            return FallbackReason.DEVICE_NOT_ALLOWED
        if offer.allowed_os and device.os not in offer.allowed_os:
            return FallbackReason.OS_NOT_ALLOWED
    if not offer.destination_usable:
        logger.error("offer %s has an unusable destination URL", offer.id)
        return FallbackReason.BAD_DESTINATION
    return None


def _visitor_keys(offer_id: int, visit: _Visit) -> list[str]:
    return [
        f"uclick:{offer_id}:{visit.affiliate_id}:{hashlib.sha256(v.encode()).hexdigest()[:32]}"
        for v in visit.visitors
    ]


def _serve(offer: OfferSnapshot, visit: _Visit, origin_offer_id: int | None) -> ClickOutcome | str:
    """Record the click for this offer and build its redirect; a refusal reason if capped."""
    click_id = click_id_new(visit.now)
    params = visit.params
    macros = {
        "click_id": click_id,
        "offer_id": offer.id,
        "aff_id": visit.affiliate_id,
        **{f"sub{n}": params[f"sub{n}"] for n in range(1, 6)},
        "source_id": params["source_id"],
        "aff_click_id": params["aff_click_id"],
        "creative_id": params["creative_id"][:64],
        "country": visit.country,
        "ip": visit.ip or "",
        "timestamp": int(visit.now.timestamp()),
    }
    redirect_url = macro_render(offer.destination_url, macros)
    if len(redirect_url) > REDIRECT_MAX_LENGTH:  # the host cannot change: see macros
        return FallbackReason.BAD_REQUEST
    click = visit.record(offer.id, click_id, origin_offer_id=origin_offer_id)
    caps = []
    for rule in offer.click_caps(visit.affiliate_id):
        key, ttl = cap_counter_key(
            cap_id=rule.cap_id, period=rule.period, now=visit.now, timezone=offer.timezone
        )
        caps.append(CapCounter(key=key, limit=rule.limit, ttl_seconds=ttl))
    # A HEAD, a prefetch, an empty UA or a link a page embeds is never unique, and must not use
    # up the visitor's unique click either: the browser's real click may follow it.
    visitor_keys = [] if visit.non_browser else _visitor_keys(offer.id, visit)
    try:
        result = click_buffer_append(click=click, visitor_keys=visitor_keys, caps=caps)
    except redis.RedisError:
        # Redis down: the click goes straight to PostgreSQL and the shopper still gets through.
        logger.warning("redis unavailable; writing click %s to PostgreSQL directly", click_id)
        click_enrich(click, buffered_unique=True)
        click_store.clicks_insert([click])
    else:
        if not result.accepted:
            return FallbackReason.CLICK_CAP_REACHED
    return ClickOutcome(
        redirect_url=redirect_url,
        click_id=click_id,
        offer_id=offer.id,
        origin_offer_id=origin_offer_id,
        cookie_max_age=offer.attribution_window_days * 86400,
    )


def _record_unbilled(offer: OfferSnapshot, visit: _Visit, reason: str) -> None:
    """Clicks that end at a fallback URL are kept (with their reason) but never counted."""
    click = visit.record(offer.id, click_id_new(visit.now), fallback_reason=reason)
    try:
        click_buffer_append_unbilled(click)
    except redis.RedisError:
        click_enrich(click, buffered_unique=False)
        click_store.clicks_insert([click])


def click_handle(
    *,
    query: Mapping[str, str],
    ip: str | None,
    user_agent: str,
    referrer: str,
    visitor_id: str,
    now: datetime,
    visitor_id_new: str = "",
    non_browser: bool = False,
) -> ClickOutcome:
    """Decide where a click goes and record it. Never raises on bad input.

    The chain when the named offer cannot take the click: its fallback offer (and theirs, up to
    MAX_FALLBACK_OFFERS), then its fallback URL, then the network's. `visitor_id` is the visitor
    cookie the browser sent ("" for none); `visitor_id_new` is the one the caller sets when there
    was none, so the browser's next click is recognised as the same visitor.
    """
    params = click_params_parse(query)
    offer_id, affiliate_id = _positive_int(params["offer_id"]), _positive_int(params["aff_id"])
    if offer_id is None or affiliate_id is None:
        return ClickOutcome(click_fallback_url(None), fallback_reason=FallbackReason.MISSING_IDS)
    offer = catalog.offer_snapshot(offer_id)
    if offer is None:
        return ClickOutcome(click_fallback_url(None), fallback_reason=FallbackReason.UNKNOWN_OFFER)
    affiliate_active = catalog.affiliate_active(affiliate_id)
    if affiliate_active is None:
        return ClickOutcome(
            click_fallback_url(offer), fallback_reason=FallbackReason.UNKNOWN_AFFILIATE
        )
    user_agent = text_clean(user_agent, 512)
    if visitor_id:
        visitors = [visitor_id]
    else:
        visitors = [f"{ip}|{user_agent}", *([visitor_id_new] if visitor_id_new else [])]
    visit = _Visit(
        affiliate_id=affiliate_id,
        affiliate_active=affiliate_active,
        params=params,
        ip=ip,
        country=country_for_ip(ip),
        user_agent=user_agent,
        referrer=text_clean(referrer, 1024),
        visitors=visitors,
        non_browser=non_browser or not user_agent.strip(),
        now=now,
    )
    first_reason: str | None = None
    candidate: OfferSnapshot | None = offer
    seen: set[int] = set()
    while candidate is not None and candidate.id not in seen and len(seen) <= MAX_FALLBACK_OFFERS:
        seen.add(candidate.id)
        reason = _refusal(candidate, visit)
        if reason is None:
            served = _serve(candidate, visit, None if candidate is offer else offer.id)
            if isinstance(served, ClickOutcome):
                return served
            reason = served
        first_reason = first_reason or reason
        next_id = candidate.fallback_offer_id
        candidate = catalog.offer_snapshot(next_id) if next_id else None
    reason = first_reason or FallbackReason.NOT_RUNNABLE
    _record_unbilled(offer, visit, reason)
    return ClickOutcome(click_fallback_url(offer), fallback_reason=reason)
