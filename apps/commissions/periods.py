"""Billing periods, in calendar days of the affiliate's time zone: weekly (Monday to Sunday),
bi-weekly (two-week blocks counted from Monday 2024-01-01) and monthly (calendar month).

A period's days are local days; its bounds as instants are local midnights, so a monthly period of
an affiliate in Europe/Berlin runs from 1st 00:00 Berlin time (the day before, 22:00 or 23:00 UTC)
to the next 1st 00:00 Berlin time. An entry belongs to the period in which its `available_at`
falls.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

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


def local_midnight(day: dt.date, tz_name: str) -> dt.datetime:
    """The instant (in UTC) at which `day` starts in the time zone `tz_name`."""
    local = dt.datetime.combine(day, dt.time.min, tzinfo=zoneinfo.ZoneInfo(tz_name))
    return local.astimezone(dt.UTC)


def local_date(moment: dt.datetime, tz_name: str) -> dt.date:
    """The calendar day `moment` falls on in the time zone `tz_name`."""
    return moment.astimezone(zoneinfo.ZoneInfo(tz_name)).date()


def period_closes_at(*, period_end: dt.date, tz_name: str) -> dt.datetime:
    """The instant a period whose last day is `period_end` ends: the next local midnight."""
    return local_midnight(period_end + dt.timedelta(days=1), tz_name)


def period_of(*, period: str, moment: dt.datetime, tz_name: str) -> tuple[dt.date, dt.date]:
    """The billing period (local first and last day) an entry available at `moment` belongs to."""
    return period_containing(period=period, day=local_date(moment, tz_name))
