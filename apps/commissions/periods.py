"""Billing periods, in UTC calendar days: weekly (Monday to Sunday), bi-weekly (two-week blocks
counted from Monday 2024-01-01) and monthly (calendar month)."""

from __future__ import annotations

import datetime as dt

from apps.partners.models import BillingPeriod

_BIWEEKLY_EPOCH = dt.date(2024, 1, 1)  # a Monday


def period_containing(*, period: str, day: dt.date) -> tuple[dt.date, dt.date]:
    """(first day, last day) of the billing period that contains `day`; both inclusive."""
    if period == BillingPeriod.WEEKLY:
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=6)
    if period == BillingPeriod.BIWEEKLY:
        start = day - dt.timedelta(days=(day - _BIWEEKLY_EPOCH).days % 14)
        return start, start + dt.timedelta(days=13)
    if period == BillingPeriod.MONTHLY:
        start = day.replace(day=1)
        following = (start + dt.timedelta(days=32)).replace(day=1)
        return start, following - dt.timedelta(days=1)
    raise ValueError(f"unknown billing period {period!r}")
