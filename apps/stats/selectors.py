"""Stats straight from clicks and conversions, grouped and totalled in the caller's timezone.

Two aggregate queries per report (clicks, conversions). Hourly rollups replace the raw scans when
volume needs them; the answer's shape stays.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncHour

from apps.common.money import money_round
from apps.common.text import digits_int
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus
from apps.tracking.models import Click

GROUP_FIELDS = (
    "day",
    "hour",
    "offer",
    "affiliate",
    "goal",
    "country",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
)
FILTER_FIELDS = ("offer", "affiliate", "goal", "country", "sub1", "sub2", "sub3", "sub4", "sub5")
MAX_DAYS = 366
# Reports cover what a network can hold; outside this, shifting by a time zone leaves the
# calendar (date.max + 1 day), so such dates are refused as invalid.
MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2999, 12, 31)


@cache
def _timezone_names() -> frozenset[str]:
    """zoneinfo.available_timezones() walks the tz database on every call; once per process."""
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True)
class StatsQuery:
    date_from: date
    date_to: date
    timezone: str
    group_by: tuple[str, ...]
    filters: Mapping[str, str]


@dataclass(frozen=True)
class Scope:
    """Whose data: None means everyone's (staff)."""

    affiliate_id: int | None = None
    advertiser_id: int | None = None
    include_revenue: bool = False


def _click_expressions(tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    return {
        "day": TruncDate("created_at", tzinfo=tz),
        "hour": TruncHour("created_at", tzinfo=tz),
        "offer": F("offer_id"),
        "affiliate": F("affiliate_id"),
        "country": F("country"),
        **{f"sub{i}": F(f"sub{i}") for i in range(1, 6)},
    }


def _conversion_expressions(tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    return {
        "day": TruncDate("created_at", tzinfo=tz),
        "hour": TruncHour("created_at", tzinfo=tz),
        "offer": F("offer_id"),
        "affiliate": F("affiliate_id"),
        "goal": F("goal__code"),
        "country": F("click_country"),
        **{f"sub{i}": F(f"sub{i}") for i in range(1, 6)},
    }


def _filtered(qs: QuerySet[Any], filters: Mapping[str, str], *, clicks: bool) -> QuerySet[Any]:
    lookups = {
        "offer": "offer_id",
        "affiliate": "affiliate_id",
        "goal": "goal__code",
        # Conversions keep their click's country as click_country; sub ids have the same names.
        "country": "country" if clicks else "click_country",
        **{f"sub{i}": f"sub{i}" for i in range(1, 6)},
    }
    for name, value in filters.items():
        if name == "goal" and clicks:
            continue  # clicks have no goal; a goal filter narrows conversions only
        qs = qs.filter(**{lookups[name]: value})
    return qs


def _sort_key(key: tuple[object, ...]) -> tuple[tuple[int, object], ...]:
    """Ids sort as numbers (9 before 10), everything else as text; None last."""
    return tuple(
        (0, value) if isinstance(value, int) else (2, "") if value is None else (1, str(value))
        for value in key
    )


def _key_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def stats_report(*, query: StatsQuery, scope: Scope) -> dict[str, Any]:
    tz = zoneinfo.ZoneInfo(query.timezone)
    start = datetime.combine(query.date_from, time.min, tzinfo=tz)
    end = datetime.combine(query.date_to + timedelta(days=1), time.min, tzinfo=tz)
    owner = Q()
    if scope.affiliate_id is not None:
        owner &= Q(affiliate_id=scope.affiliate_id)
    if scope.advertiser_id is not None:
        owner &= Q(offer__advertiser_id=scope.advertiser_id)
    # Annotations carry a prefix so they cannot collide with model fields (offer, affiliate, …).
    group = [*query.group_by, "currency"]
    columns = [f"g_{name}" for name in group]

    clicks = _filtered(
        # Clicks that ended at a fallback URL are kept for debugging but never counted.
        Click.objects.filter(owner, created_at__gte=start, created_at__lt=end, fallback_reason=""),
        query.filters,
        clicks=True,
    )
    click_exprs = {f"g_{k}": v for k, v in _click_expressions(tz).items() if k in query.group_by}
    rows: dict[tuple[object, ...], dict[str, Any]] = {}
    if "goal" not in query.group_by:
        click_rows = (
            clicks.annotate(**click_exprs, g_currency=F("offer__currency"))
            .values(*columns)
            .annotate(clicks=Count("id"), unique_clicks=Count("id", filter=Q(is_unique=True)))
            .order_by()
        )
        for row in click_rows:
            key = tuple(_key_value(row[c]) for c in columns)
            rows[key] = {"clicks": row["clicks"], "unique_clicks": row["unique_clicks"]}

    conversions = _filtered(
        Conversion.objects.filter(owner, created_at__gte=start, created_at__lt=end),
        query.filters,
        clicks=False,
    )
    conv_exprs = {
        f"g_{k}": v for k, v in _conversion_expressions(tz).items() if k in query.group_by
    }
    approved = Q(status=ConversionStatus.APPROVED)
    conversion_rows = (
        conversions.annotate(**conv_exprs, g_currency=F("currency"))
        .values(*columns)
        .annotate(
            conversions=Count("id", filter=approved),
            pending=Count("id", filter=Q(status=ConversionStatus.PENDING)),
            rejected=Count(
                "id", filter=Q(status__in=[ConversionStatus.REJECTED, ConversionStatus.REVERSED])
            ),
            payout=Sum("payout", filter=approved),
            revenue=Sum("revenue", filter=approved),
        )
        .order_by()
    )
    for row in conversion_rows:
        key = tuple(_key_value(row[c]) for c in columns)
        rows.setdefault(key, {}).update(
            {
                name: row[name]
                for name in ("conversions", "pending", "rejected", "payout", "revenue")
            }
        )

    out_rows = [
        {**dict(zip(group, key, strict=True)), **_metrics(values, key[-1], scope)}
        for key, values in sorted(rows.items(), key=lambda item: _sort_key(item[0]))
    ]
    totals: dict[str, dict[str, Any]] = {}
    for key, values in rows.items():
        total = totals.setdefault(str(key[-1]), {})
        for name, value in values.items():
            total[name] = (total.get(name) or 0) + (value or 0)
    return {
        "rows": out_rows,
        "totals": [
            {"currency": currency, **_metrics(values, currency, scope)}
            for currency, values in sorted(totals.items())
        ],
    }


METRICS = ("clicks", "unique_clicks", "conversions", "pending", "rejected", "payout", "cr", "epc")


def stats_columns(*, query: StatsQuery, scope: Scope) -> list[str]:
    """The columns of a report's rows, in order (for CSV, where an empty report has a header)."""
    columns = [*query.group_by, "currency", *METRICS]
    if scope.include_revenue:
        columns.append("revenue")
        if scope.advertiser_id is None:
            columns += ["profit", "margin"]
    return columns


def _ratio(numerator: Decimal, denominator: Decimal | int, places: str) -> str:
    if not denominator:
        return str(Decimal(0).quantize(Decimal(places)))
    return str((numerator / denominator).quantize(Decimal(places), rounding=ROUND_HALF_UP))


def _metrics(values: Mapping[str, Any], currency: object, scope: Scope) -> dict[str, Any]:
    currency = str(currency)
    clicks = int(values.get("clicks") or 0)
    conversions = int(values.get("conversions") or 0)
    payout = money_round(Decimal(values.get("payout") or 0), currency)
    metrics: dict[str, Any] = {
        "clicks": clicks,
        "unique_clicks": int(values.get("unique_clicks") or 0),
        "conversions": conversions,
        "pending": int(values.get("pending") or 0),
        "rejected": int(values.get("rejected") or 0),
        "payout": str(payout),
        "cr": _ratio(Decimal(conversions) * 100, clicks, "0.01"),
        "epc": _ratio(payout, clicks, "0.0001"),
    }
    if scope.include_revenue:
        revenue = money_round(Decimal(values.get("revenue") or 0), currency)
        metrics["revenue"] = str(revenue)
        if scope.advertiser_id is None:
            profit = revenue - payout
            metrics["profit"] = str(profit)
            metrics["margin"] = _ratio(profit * 100, revenue, "0.01")
    return metrics


def stats_query_parse(
    *, params: Mapping[str, str], default_timezone: str, now: datetime
) -> StatsQuery:
    """Validate report parameters; raises ValueError(code) with a stable code.

    Missing dates mean today in the report's time zone (not in UTC: at 01:00 in Tokyo, "today"
    is already the next day there)."""
    tz_name = params.get("timezone") or default_timezone
    if tz_name not in _timezone_names():
        raise ValueError("invalid_timezone")
    today = now.astimezone(zoneinfo.ZoneInfo(tz_name)).date()
    try:
        date_from = date.fromisoformat(params["date_from"]) if params.get("date_from") else today
        date_to = date.fromisoformat(params["date_to"]) if params.get("date_to") else today
    except ValueError as exc:
        raise ValueError("invalid_date") from exc
    if not (MIN_DATE <= date_from <= MAX_DATE and MIN_DATE <= date_to <= MAX_DATE):
        raise ValueError("invalid_date")
    if date_from > date_to:
        raise ValueError("date_from_after_date_to")
    if (date_to - date_from).days >= MAX_DAYS:
        raise ValueError("date_range_too_long")
    group_by = tuple(g for g in (params.get("group_by") or "day").split(",") if g)
    if (
        not group_by
        or any(g not in GROUP_FIELDS for g in group_by)
        or len(set(group_by)) != len(group_by)
    ):
        raise ValueError("invalid_group_by")
    filters = {name: params[name][:255] for name in FILTER_FIELDS if params.get(name)}
    for name in ("offer", "affiliate"):
        if name in filters and digits_int(filters[name]) is None:
            raise ValueError("invalid_filter")
    if any("\x00" in v for v in filters.values()):
        raise ValueError("invalid_filter")
    return StatsQuery(date_from, date_to, tz_name, group_by, filters)
