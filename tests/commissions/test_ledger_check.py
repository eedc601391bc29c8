"""Reconciliation: a clean ledger passes; every kind of drift is reported loudly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.commissions.models import LedgerEntry, Statement
from apps.commissions.selectors import ledger_check
from apps.commissions.services import (
    commission_accrue,
    statement_approve,
    statement_mark_paid,
    statements_build,
)
from apps.commissions.tasks import ledger_check as ledger_check_task
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus
from tests.commissions.conftest import T0, at

pytestmark = pytest.mark.django_db
D = dt.date
TRIGGER = "commissions_ledgerentry_append_only"
LATER = T0 + dt.timedelta(days=400)


@pytest.fixture
def books(affiliate, convert, staff_user):
    """A paid statement, a reversal, a re-approval, an over-cap and a pending conversion."""
    affiliate.billing_period = "weekly"
    affiliate.minimum_payout = Decimal("1")
    affiliate.save()
    paid = convert(payout=Decimal("20.00"), created_at=T0)
    flipped = convert(payout=Decimal("3.00"), created_at=T0)
    convert(payout=Decimal("9.00"), created_at=T0, is_over_cap=True)
    convert(payout=Decimal("9.00"), created_at=T0, status=ConversionStatus.PENDING)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    statement = Statement.objects.get()
    statement_approve(statement_id=statement.pk, user_id=staff_user.pk)
    statement_mark_paid(statement_id=statement.pk, user_id=staff_user.pk)
    for status in (ConversionStatus.REJECTED, ConversionStatus.APPROVED):
        Conversion.objects.filter(pk=flipped.pk).update(status=status)
        commission_accrue(now=T0)
    return {"paid": paid, "flipped": flipped, "statement": statement}


def _raw(sql: str, *params) -> None:
    """Change ledger rows behind the append-only trigger (the test's transaction rolls back)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK checks queued on it
        cursor.execute(f"ALTER TABLE commissions_ledgerentry DISABLE TRIGGER {TRIGGER}")
        cursor.execute(sql, params)
        cursor.execute(f"ALTER TABLE commissions_ledgerentry ENABLE TRIGGER {TRIGGER}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _checks():
    return [d.check for d in ledger_check(settled_before=LATER)]


def test_clean_books_pass(books):
    assert _checks() == []
    out = StringIO()
    call_command("ledger_check", "--grace-minutes=0", stdout=out)
    assert out.getvalue() == "ledger ok\n"
    assert ledger_check_task.apply().get() == 0


def test_approved_without_accrual_is_reported(books, convert):
    missing = convert(payout=Decimal("1.00"), created_at=T0)
    drifts = ledger_check(settled_before=LATER)
    assert [(d.check, d.rows) for d in drifts] == [
        (
            "approved_without_commission",
            [(missing.pk, missing.affiliate_id, Decimal("1.00"), "USD")],
        )
    ]
    # Inside the grace window it is the accrual job's turn, not drift.
    assert ledger_check(settled_before=T0) == []


def test_rejected_without_accrual_keeps_a_live_commission(books):
    Conversion.objects.filter(pk=books["paid"].pk).update(status=ConversionStatus.REJECTED)
    assert _checks() == ["rejected_with_live_commission"]
    commission_accrue()
    assert _checks() == []


def test_tampered_amount_breaks_several_rules(books):
    _raw(
        "UPDATE commissions_ledgerentry SET amount = 21 WHERE conversion_id = %s",
        books["paid"].pk,
    )
    assert _checks() == [
        "balance_not_sum_of_entries",
        "statement_total_not_sum_of_lines",
    ]


def test_tampered_reversal_and_deleted_payout(books):
    _raw(
        "UPDATE commissions_ledgerentry SET amount = -2.99 WHERE kind = 'reversal'",
    )
    _raw("DELETE FROM commissions_ledgerentry WHERE kind = 'payout'")
    assert _checks() == [
        "balance_not_sum_of_entries",
        "reversal_not_matching_commission",
        "paid_statement_payout_mismatch",
    ]


def test_missing_cycle_is_reported(books):
    _raw(
        "DELETE FROM commissions_ledgerentry WHERE conversion_id = %s AND kind = 'reversal'",
        books["flipped"].pk,
    )
    assert "commission_cycles_out_of_order" in _checks()


def test_command_exits_non_zero_with_a_report(books):
    Conversion.objects.filter(pk=books["paid"].pk).update(status=ConversionStatus.REVERSED)
    err = StringIO()
    with pytest.raises(CommandError, match="ledger drift: rejected_with_live_commission"):
        call_command("ledger_check", "--grace-minutes=0", stderr=err)
    assert err.getvalue().splitlines() == [
        "DRIFT rejected_with_live_commission: 1 rows",
        f"  ({books['paid'].pk}, 'reversed')",
    ]


def test_task_logs_drift(books, caplog, settings):
    settings.COMMISSIONS_CHECK_GRACE_MINUTES = 0
    Conversion.objects.filter(pk=books["paid"].pk).update(status=ConversionStatus.REVERSED)
    assert ledger_check_task.apply().get() == 1
    assert "ledger drift: rejected_with_live_commission" in caplog.text
    assert ledger_check_task.name == "commissions.ledger_check"


def test_ledger_is_untouched_by_the_check(books):
    before = list(LedgerEntry.objects.values_list("id", "amount"))
    ledger_check(settled_before=LATER)
    assert list(LedgerEntry.objects.values_list("id", "amount")) == before
