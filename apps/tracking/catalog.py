"""The hot paths' view of offers, affiliates, access and caps: an in-process cache.

Every web process keeps what it has looked up in plain dicts, so a click (and most of a postback:
offer, advertiser, goals, custom payouts, quality profile) costs no PostgreSQL query once warm.
Any change to those models bumps a version number in Redis (after commit); each process reads that
number at most once per CATALOG_CHECK_SECONDS and drops its cache when it moved, so staff edits
reach every process within a few seconds. Entries also expire after CATALOG_MAX_AGE_SECONDS,
which bounds staleness if Redis cannot be read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from apps.common.redis import redis_client
from apps.offers.models import (
    AccessStatus,
    CapMetric,
    Offer,
    OfferAccess,
    OfferCap,
    OfferStatus,
    OfferVisibility,
)
from apps.partners.models import Affiliate, AffiliateStatus
from apps.tracking.macros import destination_is_usable

logger = logging.getLogger(__name__)

VERSION_KEY = "catalog:version"
_MAX_ENTRIES = 50_000  # unknown ids are cached too; a flood of random ids must not grow memory


@dataclass(frozen=True, slots=True)
class CapRule:
    cap_id: int
    affiliate_id: int | None
    goal_id: int | None
    metric: str
    period: str
    limit: int


@dataclass(frozen=True, slots=True)
class OfferSnapshot:
    id: int
    advertiser_id: int
    status: str
    visibility: str
    destination_url: str
    destination_usable: bool
    fallback_url: str
    fallback_offer_id: int | None
    currency: str
    timezone: str
    attribution_window_days: int
    allowed_countries: frozenset[str]
    blocked_countries: frozenset[str]
    allowed_devices: frozenset[str]
    allowed_os: frozenset[str]
    caps: tuple[CapRule, ...]

    @property
    def is_active(self) -> bool:
        return self.status == OfferStatus.ACTIVE

    @property
    def needs_device(self) -> bool:
        return bool(self.allowed_devices or self.allowed_os)

    def click_caps(self, affiliate_id: int) -> list[CapRule]:
        return [
            cap
            for cap in self.caps
            if cap.metric == CapMetric.CLICKS and cap.affiliate_id in (None, affiliate_id)
        ]


class _Catalog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, Any], tuple[float, Any]] = {}
        self._version: bytes | None = None
        self._checked_at: float | None = None  # never: check at the next lookup

    def _check_version(self, now: float) -> None:
        # monotonic() counts from boot: "never checked" cannot be 0.0 on a machine up for less
        # than CATALOG_CHECK_SECONDS.
        checked_at = self._checked_at
        if checked_at is not None and now - checked_at < settings.CATALOG_CHECK_SECONDS:
            return
        self._checked_at = now
        try:
            version = redis_client().get(VERSION_KEY)
        except redis.RedisError:
            return  # entries still expire by age
        if version != self._version:
            with self._lock:
                self._entries.clear()
                self._version = version

    def get(self, kind: str, key: Any, load: Any) -> Any:
        now = time.monotonic()
        self._check_version(now)
        entry = self._entries.get((kind, key))
        if entry is not None and now - entry[0] < settings.CATALOG_MAX_AGE_SECONDS:
            return entry[1]
        value = load(key)
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[(kind, key)] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._checked_at = None


_catalog = _Catalog()


def _load_offer(offer_id: int) -> OfferSnapshot | None:
    offer = Offer.objects.filter(pk=offer_id).first()
    if offer is None:
        return None
    caps = tuple(
        CapRule(c.pk, c.affiliate_id, c.goal_id, c.metric, c.period, c.limit)
        for c in OfferCap.objects.filter(offer_id=offer_id).order_by("pk")
    )
    return OfferSnapshot(
        id=offer.pk,
        advertiser_id=offer.advertiser_id,
        status=offer.status,
        visibility=offer.visibility,
        destination_url=offer.destination_url,
        destination_usable=destination_is_usable(offer.destination_url),
        fallback_url=offer.fallback_url,
        fallback_offer_id=offer.fallback_offer_id,
        currency=offer.currency,
        timezone=offer.timezone,
        attribution_window_days=offer.attribution_window_days,
        allowed_countries=frozenset(offer.allowed_countries),
        blocked_countries=frozenset(offer.blocked_countries),
        allowed_devices=frozenset(offer.allowed_devices),
        allowed_os=frozenset(offer.allowed_os),
        caps=caps,
    )


def _load_affiliate_active(affiliate_id: int) -> bool | None:
    status = Affiliate.objects.filter(pk=affiliate_id).values_list("status", flat=True).first()
    return None if status is None else status == AffiliateStatus.ACTIVE


def _load_access(key: tuple[int, int]) -> str | None:
    offer_id, affiliate_id = key
    return (
        OfferAccess.objects.filter(offer_id=offer_id, affiliate_id=affiliate_id)
        .values_list("status", flat=True)
        .first()
    )


def cached(kind: str, key: Any, load: Callable[[Any], Any]) -> Any:
    """`load(key)`, kept in this process until a catalog change or CATALOG_MAX_AGE_SECONDS.
    Only for rows whose models tell the catalog they changed (apps.tracking.signals)."""
    return _catalog.get(kind, key, load)


def _load_offer_model(offer_id: int) -> Offer | None:
    return Offer.objects.select_related("advertiser").filter(pk=offer_id).first()


def offer_with_advertiser(offer_id: int) -> Offer | None:
    """The Offer row with its advertiser, shared read-only between requests: never modify it."""
    return _catalog.get("offer-model", offer_id, _load_offer_model)  # type: ignore[no-any-return]


def offer_snapshot(offer_id: int) -> OfferSnapshot | None:
    return _catalog.get("offer", offer_id, _load_offer)  # type: ignore[no-any-return]


def affiliate_active(affiliate_id: int) -> bool | None:
    """True/False for a known affiliate, None for an unknown id."""
    return _catalog.get("affiliate", affiliate_id, _load_affiliate_active)  # type: ignore[no-any-return]


def access_allows(offer: OfferSnapshot, affiliate_id: int) -> bool:
    """Public offers are open unless the affiliate was rejected; others need approval."""
    status = _catalog.get("access", (offer.id, affiliate_id), _load_access)
    if offer.visibility == OfferVisibility.PUBLIC:
        return status != AccessStatus.REJECTED
    return status == AccessStatus.APPROVED


def catalog_local_clear() -> None:
    """Drop this process's cache now (the others follow on catalog_invalidate after commit)."""
    _catalog.clear()


def catalog_invalidate() -> None:
    """Tell every process to drop its cache (called after commit of a relevant change)."""
    _catalog.clear()
    try:
        redis_client().incr(VERSION_KEY)
    except redis.RedisError:
        logger.warning("redis unavailable: other processes see this change within max age")
