"""Billing periods in the affiliate's time zone: a monthly period is the affiliate's local month,
and an entry belongs to the period its available_at falls in, in that time zone."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.commissions.exports import statement_csv
from apps.commissions.models import LedgerEntry, Statement
from apps.commissions.periods import local_midnight, period_closes_at, period_of
from apps.commissions.services import commission_accrue, statements_build
from tests.commissions.conftest import at

pytestmark = pytest.mark.django_db
D = dt.date


@pytest.mark.parametrize(
    ("moment", "tz", "expected"),
    [
        # 23:30 UTC on March 31 is 01:30 on April 1 in Berlin (summer time since March 29).
        (at(2026, 3, 31, 23, 30), "Europe/Berlin", (D(2026, 4, 1), D(2026, 4, 30))),
        (at(2026, 3, 31, 21, 59), "Europe/Berlin", (D(2026, 3, 1), D(2026, 3, 31))),
        (at(2026, 3, 31, 23, 30), "UTC", (D(2026, 3, 1), D(2026, 3, 31))),
        # 03:00 UTC on April 1 is still March 31 in Los Angeles.
        (at(2026, 4, 1, 3), "America/Los_Angeles", (D(2026, 3, 1), D(2026, 3, 31))),
        # Winter: 23:30 UTC on Jan 31 is Feb 1 00:30 in Berlin (UTC+1).
        (at(2026, 1, 31, 23, 30), "Europe/Berlin", (D(2026, 2, 1), D(2026, 2, 28))),
    ],
)
def test_monthly_period_of_an_entry(moment, tz, expected):
    assert period_of(period="monthly", moment=moment, tz_name=tz) == expected


def test_period_bounds_are_local_midnights():
    assert local_midnight(D(2026, 4, 1), "Europe/Berlin") == at(2026, 3, 31, 22)
    assert local_midnight(D(2026, 3, 1), "Europe/Berlin") == at(2026, 2, 28, 23)
    assert period_closes_at(period_end=D(2026, 3, 31), tz_name="Asia/Tokyo") == at(2026, 3, 31, 15)
    assert period_closes_at(period_end=D(2026, 3, 31), tz_name="UTC") == at(2026, 4, 1)


@pytest.fixture
def berlin(affiliate):
    affiliate.timezone = "Europe/Berlin"
    affiliate.minimum_payout = Decimal("1")
    affiliate.save()
    return affiliate


def _statements():
    return list(
        Statement.objects.order_by("period_start", "id").values_list(
            "period_start", "period_end", "timezone", "status", "total"
        )
    )


def test_entry_at_2330_utc_on_the_last_day_is_next_months_in_berlin(berlin, convert):
    convert(payout=Decimal("10.00"), created_at=at(2026, 3, 31, 21, 30))  # 23:30 Berlin: March
    convert(payout=Decimal("20.00"), created_at=at(2026, 3, 31, 23, 30))  # 01:30 Berlin: April
    commission_accrue(now=at(2026, 3, 31, 21, 30))
    assert sorted(LedgerEntry.objects.values_list("available_at", flat=True)) == [
        at(2026, 3, 31, 21, 30),
        at(2026, 3, 31, 23, 30),
    ]

    # 00:30 UTC on April 1: March is over in Berlin (since 22:00 UTC), so its statement is built.
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 4, 30), now=at(2026, 4, 1, 0, 30))
    assert _statements() == [
        (D(2026, 3, 1), D(2026, 3, 31), "Europe/Berlin", "draft", Decimal("10.00"))
    ]
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 5, 31), now=at(2026, 5, 1))
    assert _statements()[1:] == [
        (D(2026, 4, 1), D(2026, 4, 30), "Europe/Berlin", "draft", Decimal("20.00"))
    ]


def test_a_utc_affiliate_has_both_in_march(affiliate, convert):
    affiliate.minimum_payout = Decimal("1")
    affiliate.save()
    convert(payout=Decimal("10.00"), created_at=at(2026, 3, 31, 21, 30))
    convert(payout=Decimal("20.00"), created_at=at(2026, 3, 31, 23, 30))
    commission_accrue(now=at(2026, 3, 31, 23, 30))
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 4, 30), now=at(2026, 4, 1, 0, 30))
    assert _statements() == [(D(2026, 3, 1), D(2026, 3, 31), "UTC", "draft", Decimal("30.00"))]


def test_a_period_is_not_built_before_it_is_over_locally(affiliate, convert):
    affiliate.timezone = "America/Los_Angeles"
    affiliate.minimum_payout = Decimal("1")
    affiliate.save()
    convert(payout=Decimal("10.00"), created_at=at(2026, 3, 15))
    commission_accrue(now=at(2026, 3, 15))
    # 06:00 UTC on April 1 is 23:00 on March 31 in Los Angeles: March is still open.
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 4, 30), now=at(2026, 4, 1, 6))
    assert _statements() == []
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 4, 30), now=at(2026, 4, 1, 7))
    assert _statements() == [
        (D(2026, 3, 1), D(2026, 3, 31), "America/Los_Angeles", "draft", Decimal("10.00"))
    ]


def test_weekly_periods_in_tokyo(affiliate, convert):
    affiliate.timezone = "Asia/Tokyo"
    affiliate.billing_period = "weekly"
    affiliate.minimum_payout = Decimal("1")
    affiliate.save()
    # Sunday 2026-03-08 16:00 UTC is Monday 01:00 in Tokyo: the next week.
    convert(payout=Decimal("5.00"), created_at=at(2026, 3, 8, 14))
    convert(payout=Decimal("7.00"), created_at=at(2026, 3, 8, 16))
    commission_accrue(now=at(2026, 3, 8, 14))
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 3, 16))
    assert _statements() == [
        (D(2026, 3, 2), D(2026, 3, 8), "Asia/Tokyo", "draft", Decimal("5.00")),
        (D(2026, 3, 9), D(2026, 3, 15), "Asia/Tokyo", "draft", Decimal("7.00")),
    ]


def test_statement_documents_show_local_times(berlin, convert):
    conversion = convert(payout=Decimal("10.00"), created_at=at(2026, 3, 31, 21, 30))
    commission_accrue(now=at(2026, 3, 31, 21, 30))
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 4, 2))
    lines = statement_csv(statement=Statement.objects.get()).splitlines()
    assert lines[1].split(",")[2:5] == [
        "2026-03-31T23:30:00+02:00",
        "2026-03-31T23:30:00+02:00",
        str(conversion.pk),
    ]


def test_an_unknown_time_zone_skips_the_affiliate_loudly(affiliate, convert, caplog):
    convert(payout=Decimal("100.00"), created_at=at(2026, 3, 15))
    commission_accrue(now=at(2026, 3, 15))
    type(affiliate).objects.filter(pk=affiliate.pk).update(timezone="Mars/Olympus_Mons")
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 4, 2))
    assert _statements() == []
    assert "unknown time zone 'Mars/Olympus_Mons'" in caplog.text
