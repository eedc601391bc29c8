"""Caps counted in real time in Redis, per period in the offer's timezone."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta

from apps.offers.models import CapPeriod

_TTL_SECONDS = {
    CapPeriod.DAY: 2 * 86400,
    CapPeriod.WEEK: 8 * 86400,
    CapPeriod.MONTH: 32 * 86400,
    CapPeriod.TOTAL: 0,
}


def cap_period_label(*, period: str, now: datetime, timezone: str) -> str:
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    if period == CapPeriod.DAY:
        return local.strftime("%Y%m%d")
    if period == CapPeriod.WEEK:
        year, week, _ = local.isocalendar()
        return f"{year}w{week:02d}"
    if period == CapPeriod.MONTH:
        return local.strftime("%Y%m")
    return "total"


def cap_counter_key(*, cap_id: int, period: str, now: datetime, timezone: str) -> tuple[str, int]:
    """The Redis key counting this cap's current period, and how long it needs to live."""
    label = cap_period_label(period=period, now=now, timezone=timezone)
    return f"cap:{cap_id}:{label}", _TTL_SECONDS[CapPeriod(period)]


def cap_period_start(*, period: str, now: datetime, timezone: str) -> datetime | None:
    """When the current period began (None for total caps), for reconciling with PostgreSQL."""
    local = now.astimezone(zoneinfo.ZoneInfo(timezone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == CapPeriod.DAY:
        return midnight
    if period == CapPeriod.WEEK:
        return midnight - timedelta(days=local.weekday())
    if period == CapPeriod.MONTH:
        return midnight.replace(day=1)
    return None
