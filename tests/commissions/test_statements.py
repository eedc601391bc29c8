"""Statements: closed periods, minimum payout roll-over, approve and pay, exports, access."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, ProgrammingError, transaction

from apps.commissions.models import EntryKind, LedgerEntry, Statement, StatementLine
from apps.commissions.periods import period_containing
from apps.commissions.selectors import Balance, balance_breakdown_for_affiliate
from apps.commissions.services import (
    CommissionError,
    commission_accrue,
    statement_approve,
    statement_mark_paid,
    statements_build,
)
from apps.commissions.tasks import build_statements
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus
from tests import factories
from tests.commissions.conftest import T0, at

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)
D = dt.date


@pytest.mark.parametrize(
    ("period", "day", "expected"),
    [
        ("weekly", D(2026, 3, 4), (D(2026, 3, 2), D(2026, 3, 8))),
        ("weekly", D(2026, 3, 2), (D(2026, 3, 2), D(2026, 3, 8))),
        ("biweekly", D(2024, 1, 14), (D(2024, 1, 1), D(2024, 1, 14))),
        ("biweekly", D(2024, 1, 15), (D(2024, 1, 15), D(2024, 1, 28))),
        ("monthly", D(2026, 2, 10), (D(2026, 2, 1), D(2026, 2, 28))),
        ("monthly", D(2024, 2, 29), (D(2024, 2, 1), D(2024, 2, 29))),
        ("monthly", D(2026, 12, 31), (D(2026, 12, 1), D(2026, 12, 31))),
    ],
)
def test_periods(period, day, expected):
    assert period_containing(period=period, day=day) == expected


@pytest.fixture
def weekly(affiliate):
    affiliate.billing_period = "weekly"
    affiliate.minimum_payout = Decimal("10.00")
    affiliate.save()
    return affiliate


def _statements():
    return list(
        Statement.objects.order_by("id").values_list(
            "affiliate_id", "currency", "period_start", "period_end", "status", "total"
        )
    )


def _lines(statement):
    return list(
        LedgerEntry.objects.filter(statement_line__statement=statement)
        .order_by("id")
        .values_list("kind", "amount")
    )


def test_builds_a_statement_of_available_entries_of_the_closed_period(weekly, convert):
    # Week of 2026-03-02..08: two commissions; one next week; a JPY one in the same week.
    convert(payout=Decimal("6.00"), created_at=T0)
    convert(payout=Decimal("5.00"), created_at=T0 + DAY)
    commission_accrue(now=T0 + DAY)
    convert(payout=Decimal("7.00"), created_at=T0 + 7 * DAY)
    commission_accrue(now=T0 + 7 * DAY)

    result = statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 3, 10))

    assert (result.created, result.rolled_over) == (1, 0)
    assert _statements() == [
        (weekly.pk, "USD", D(2026, 3, 2), D(2026, 3, 8), "draft", Decimal("11.00"))
    ]
    statement = Statement.objects.get()
    assert statement.minimum_payout == Decimal("10.00")
    assert _lines(statement) == [("commission", Decimal("6.00")), ("commission", Decimal("5.00"))]

    # Building again changes nothing.
    again = statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 3, 10))
    assert (again.created, again.rolled_over) == (0, 0)
    assert StatementLine.objects.count() == 2


def test_open_period_is_not_built(weekly, convert):
    convert(payout=Decimal("60.00"), created_at=T0)
    commission_accrue(now=T0)
    # 2026-03-08 is the last day of the week: not closed until it is over.
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 3, 8))
    assert Statement.objects.count() == 0
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 3, 9))
    assert Statement.objects.count() == 1


def test_below_minimum_rolls_over_into_the_next_period(weekly, convert):
    convert(payout=Decimal("6.00"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    assert _statements() == [
        (weekly.pk, "USD", D(2026, 3, 2), D(2026, 3, 8), "rolled_over", Decimal("6.00"))
    ]
    assert StatementLine.objects.count() == 0

    convert(payout=Decimal("4.00"), created_at=T0 + 8 * DAY)
    commission_accrue(now=T0 + 8 * DAY)
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 3, 20))
    assert _statements()[1:] == [
        (weekly.pk, "USD", D(2026, 3, 9), D(2026, 3, 15), "draft", Decimal("10.00"))
    ]
    assert _lines(Statement.objects.get(status="draft")) == [
        ("commission", Decimal("6.00")),
        ("commission", Decimal("4.00")),
    ]


def test_network_minimum_per_currency_applies_without_an_affiliate_minimum(affiliate, convert):
    assert affiliate.minimum_payout is None
    convert(payout=Decimal("4999"), currency="JPY", created_at=T0)
    convert(payout=Decimal("50.00"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 31), date_to=D(2026, 3, 31), now=at(2026, 4, 1))
    assert sorted(Statement.objects.values_list("currency", "status", "minimum_payout")) == [
        ("JPY", "rolled_over", Decimal("5000")),
        ("USD", "draft", Decimal("50.00")),
    ]


def test_pending_entries_wait_for_a_later_statement(weekly, convert, offer):
    offer.hold_days = 7
    offer.save()
    convert(payout=Decimal("20.00"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    assert Statement.objects.count() == 0
    statements_build(date_from=D(2026, 3, 15), date_to=D(2026, 3, 15), now=at(2026, 3, 16))
    assert _statements() == [
        (weekly.pk, "USD", D(2026, 3, 9), D(2026, 3, 15), "draft", Decimal("20.00"))
    ]


def test_approve_pay_and_a_late_reversal_carries_into_the_next_statement(
    weekly, convert, staff_user
):
    conversion = convert(payout=Decimal("30.00"), created_at=T0)
    convert(payout=Decimal("15.00"), created_at=T0 + DAY)
    commission_accrue(now=T0 + DAY)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    statement = Statement.objects.get()

    with pytest.raises(CommissionError) as not_yet:
        statement_mark_paid(statement_id=statement.pk, user_id=staff_user.pk)
    assert not_yet.value.code == "statement_not_approved"
    assert statement_approve(statement_id=statement.pk, user_id=staff_user.pk) is True
    assert statement_approve(statement_id=statement.pk, user_id=staff_user.pk) is False
    paid_at = T0 + 8 * DAY
    assert statement_mark_paid(statement_id=statement.pk, user_id=staff_user.pk, now=paid_at)
    assert not statement_mark_paid(statement_id=statement.pk, user_id=staff_user.pk)

    statement.refresh_from_db()
    assert (statement.status, statement.paid_by, statement.paid_at) == ("paid", staff_user, paid_at)
    payout = LedgerEntry.objects.get(kind=EntryKind.PAYOUT)
    assert (payout.amount, payout.currency, payout.statement, payout.affiliate) == (
        Decimal("-45.00"),
        "USD",
        statement,
        weekly,
    )
    assert balance_breakdown_for_affiliate(affiliate_id=weekly.pk, now=paid_at) == [
        Balance("USD", Decimal("0"), Decimal("0"), Decimal("45.00"), Decimal("0.00"))
    ]

    # The advertiser takes one back after it was paid: a negative entry in the open period;
    # the paid statement does not change.
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.REVERSED)
    commission_accrue(now=T0 + 9 * DAY)
    convert(payout=Decimal("50.00"), created_at=T0 + 10 * DAY)
    commission_accrue(now=T0 + 10 * DAY)
    statements_build(date_from=D(2026, 3, 1), date_to=D(2026, 3, 31), now=at(2026, 3, 20))
    assert _statements() == [
        (weekly.pk, "USD", D(2026, 3, 2), D(2026, 3, 8), "paid", Decimal("45.00")),
        (weekly.pk, "USD", D(2026, 3, 9), D(2026, 3, 15), "draft", Decimal("20.00")),
    ]
    assert _lines(statement) == [("commission", Decimal("30.00")), ("commission", Decimal("15.00"))]
    assert _lines(Statement.objects.get(status="draft")) == [
        ("reversal", Decimal("-30.00")),
        ("commission", Decimal("50.00")),
    ]


def test_a_reversal_that_leaves_the_period_negative_rolls_over(weekly, convert, staff_user):
    conversion = convert(payout=Decimal("30.00"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    statement = Statement.objects.get()
    statement_approve(statement_id=statement.pk, user_id=staff_user.pk)
    statement_mark_paid(statement_id=statement.pk, user_id=staff_user.pk)
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.REJECTED)
    commission_accrue(now=T0 + 8 * DAY)
    statements_build(date_from=D(2026, 3, 15), date_to=D(2026, 3, 15), now=at(2026, 3, 16))
    assert _statements()[1] == (
        weekly.pk,
        "USD",
        D(2026, 3, 9),
        D(2026, 3, 15),
        "rolled_over",
        Decimal("-30.00"),
    )


def test_rolled_over_statement_cannot_be_approved(weekly, convert, staff_user):
    convert(payout=Decimal("1.00"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    with pytest.raises(CommissionError) as error:
        statement_approve(statement_id=Statement.objects.get().pk, user_id=staff_user.pk)
    assert error.value.code == "statement_not_approvable"


def test_statement_lines_are_append_only_and_an_entry_is_on_one_statement(weekly, convert):
    convert(payout=Decimal("20.00"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    line = StatementLine.objects.get()
    with pytest.raises(ProgrammingError), transaction.atomic():
        StatementLine.objects.all().delete()
    other = Statement.objects.create(
        affiliate=weekly,
        currency="USD",
        period_start=D(2026, 3, 9),
        period_end=D(2026, 3, 15),
        status="draft",
        total=Decimal("0"),
        minimum_payout=Decimal("0"),
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        StatementLine.objects.create(statement=other, entry=line.entry)


def test_a_statement_has_one_payout_entry_by_database_rule(weekly, convert, staff_user):
    convert(payout=Decimal("20.00"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    statement = Statement.objects.get()
    statement_approve(statement_id=statement.pk, user_id=staff_user.pk)
    statement_mark_paid(statement_id=statement.pk, user_id=staff_user.pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            affiliate=weekly,
            kind=EntryKind.PAYOUT,
            amount=Decimal("-20.00"),
            currency="USD",
            statement=statement,
        )


# --- command and task -----------------------------------------------------------------------------


def test_build_statements_command(weekly, convert, time_machine):
    time_machine.move_to(T0 + 10 * DAY)
    convert(payout=Decimal("20.00"), created_at=T0)
    commission_accrue(now=T0)
    out = StringIO()
    call_command("build_statements", "--date-from=2026-03-01", "--date-to=2026-03-31", stdout=out)
    assert out.getvalue() == "statements built: 1, rolled over: 0\n"
    with pytest.raises(CommandError, match="not a date"):
        call_command("build_statements", "--date-from=yesterday", "--date-to=2026-03-31")
    with pytest.raises(CommandError, match="after"):
        call_command("build_statements", "--date-from=2026-04-01", "--date-to=2026-03-31")


def test_build_statements_task(weekly, convert, time_machine):
    time_machine.move_to(T0 + 10 * DAY)
    convert(payout=Decimal("20.00"), created_at=T0)
    commission_accrue(now=T0)
    assert build_statements.apply().successful()
    assert build_statements.apply().successful()
    assert _statements() == [
        (weekly.pk, "USD", D(2026, 3, 2), D(2026, 3, 8), "draft", Decimal("20.00"))
    ]
    assert (build_statements.name, build_statements.queue) == (
        "commissions.build_statements",
        "commissions",
    )


def test_affiliates_are_kept_apart(weekly, convert, goal):
    other = factories.AffiliateFactory(billing_period="weekly", minimum_payout=Decimal("1"))
    convert(payout=Decimal("20.00"), created_at=T0)
    convert(by=other, payout=Decimal("3.00"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    assert sorted(Statement.objects.values_list("affiliate_id", "total")) == sorted(
        [(weekly.pk, Decimal("20.00")), (other.pk, Decimal("3.00"))]
    )
