"""Commissions: approved conversions become ledger entries; reversals become negative entries;
closed billing periods become statements; paying a statement writes its payout entry.

Accrual is set-based: one `INSERT ... SELECT ... ON CONFLICT DO NOTHING` per kind and bounded id
range, each range its own transaction. Idempotent by construction: (conversion, kind, cycle) is
unique, and the next cycle is derived from the entries already there, so a rerun, a concurrent run
or a run killed halfway and run again all leave the same ledger.

Holds: an entry is available for payout at `available_at` = the later of (conversion time + the
offer's hold days) and the moment the entry was written, so a late entry never lands in a period
that is already closed. A reversal is available when its commission is (if that is still pending,
the two cancel before either can be paid) or now, when the money was already available or paid: a
negative line on the next statement.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.commissions.models import (
    EntryKind,
    LedgerEntry,
    Statement,
    StatementLine,
    StatementStatus,
)
from apps.commissions.periods import period_containing
from apps.common.money import money_round
from apps.partners.models import Affiliate

# `{where}` is filled with one of two fixed id filters (a list or a range), never with input.

# Commission for every payable conversion whose every commission has been reversed (or that has
# none): cycle = how many commissions it already had.
_ACCRUE_SQL = """
INSERT INTO commissions_ledgerentry
    (affiliate_id, kind, amount, currency, conversion_id, cycle, memo, created_at, available_at)
SELECT c.affiliate_id, 'commission', c.payout, c.currency, c.id, s.n_commission,
       'conversion ' || c.id, %(now)s,
       GREATEST(c.created_at + make_interval(days => o.hold_days), %(now)s)
FROM conversions_conversion c
JOIN offers_offer o ON o.id = c.offer_id
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE e.kind = 'commission') AS n_commission,
           count(*) FILTER (WHERE e.kind = 'reversal') AS n_reversal
    FROM commissions_ledgerentry e
    WHERE e.conversion_id = c.id AND e.kind IN ('commission', 'reversal')
) s
WHERE {where} AND c.status = 'approved' AND c.payout > 0 AND NOT c.is_over_cap
  AND s.n_commission = s.n_reversal
ORDER BY c.id
ON CONFLICT (conversion_id, kind, cycle) WHERE conversion_id IS NOT NULL DO NOTHING
"""

# Reversal of exactly what was credited (amount, affiliate, currency of the commission entry, not
# what the conversion says now), for every unreversed commission of a rejected/reversed conversion.
_REVERSE_SQL = """
INSERT INTO commissions_ledgerentry
    (affiliate_id, kind, amount, currency, conversion_id, cycle, memo, created_at, available_at)
SELECT e.affiliate_id, 'reversal', -e.amount, e.currency, e.conversion_id, e.cycle,
       'conversion ' || c.id, %(now)s, GREATEST(e.available_at, %(now)s)
FROM conversions_conversion c
JOIN commissions_ledgerentry e ON e.conversion_id = c.id AND e.kind = 'commission'
WHERE {where} AND c.status IN ('rejected', 'reversed')
  AND NOT EXISTS (
      SELECT 1 FROM commissions_ledgerentry r
      WHERE r.conversion_id = e.conversion_id AND r.kind = 'reversal' AND r.cycle = e.cycle
  )
ORDER BY c.id, e.cycle
ON CONFLICT (conversion_id, kind, cycle) WHERE conversion_id IS NOT NULL DO NOTHING
"""


class CommissionError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _batch_size() -> int:
    return int(settings.COMMISSIONS_ACCRUE_BATCH_SIZE)


def _run(sql: str, params: dict[str, Any]) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def commission_accrue(
    *, conversion_ids: list[int] | None = None, now: dt.datetime | None = None
) -> int:
    """Write missing commission and reversal entries, one bounded id range per transaction.
    Returns the number of entries written."""
    now = now or timezone.now()
    if conversion_ids is not None:
        if not conversion_ids:
            return 0
        params: dict[str, Any] = {"now": now, "ids": list(conversion_ids)}
        where = "c.id = ANY(%(ids)s)"
        return sum(_run(sql.format(where=where), params) for sql in (_ACCRUE_SQL, _REVERSE_SQL))
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM conversions_conversion")
        low, high = cursor.fetchone()
    if low is None:
        return 0
    written = 0
    step = _batch_size()
    where = "c.id >= %(low)s AND c.id < %(high)s"
    for start in range(low, high + 1, step):
        params = {"now": now, "low": start, "high": start + step}
        for sql in (_ACCRUE_SQL, _REVERSE_SQL):
            written += _run(sql.format(where=where), params)
    return written


def balance_for_affiliate(*, affiliate_id: int) -> dict[str, Decimal]:
    """Currency -> sum of all ledger entries."""
    rows = (
        LedgerEntry.objects.filter(affiliate_id=affiliate_id)
        .values("currency")
        .annotate(total=Sum("amount"))
        .order_by("currency")
    )
    return {row["currency"]: row["total"] for row in rows}


# --- statements ---------------------------------------------------------------------------------


def minimum_payout_for(*, affiliate: Affiliate, currency: str) -> Decimal:
    """The affiliate's own threshold, else the network's for the currency, else its default."""
    if affiliate.minimum_payout is not None:
        return affiliate.minimum_payout
    network: dict[str, str] = settings.COMMISSIONS_MINIMUM_PAYOUT
    return money_round(Decimal(network.get(currency, network["default"])), currency)


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


@dataclass(frozen=True)
class BuildResult:
    created: int = 0
    rolled_over: int = 0


@transaction.atomic
def statement_build_for_period(
    *, affiliate_id: int, period_start: dt.date, period_end: dt.date
) -> BuildResult:
    """Statements for one affiliate's closed period [period_start, period_end], per currency:
    every entry available before the period ended and not on a statement yet. Below the minimum
    payout the statement is recorded as rolled over, with no lines: its entries wait for the
    next period. A period that already has a statement in a currency is never rebuilt."""
    affiliate = Affiliate.objects.select_for_update().get(pk=affiliate_id)
    closes_at = _day_start(period_end + dt.timedelta(days=1))
    candidates = LedgerEntry.objects.filter(
        affiliate_id=affiliate_id, available_at__lt=closes_at, statement_line__isnull=True
    ).exclude(kind=EntryKind.PAYOUT)
    totals = candidates.values("currency").annotate(total=Sum("amount")).order_by("currency")
    created = rolled_over = 0
    for row in totals:
        currency, total = row["currency"], row["total"]
        if Statement.objects.filter(
            affiliate_id=affiliate_id, currency=currency, period_start=period_start
        ).exists():
            continue
        minimum = minimum_payout_for(affiliate=affiliate, currency=currency)
        payable = total > 0 and total >= minimum
        statement = Statement.objects.create(
            affiliate_id=affiliate_id,
            currency=currency,
            period_start=period_start,
            period_end=period_end,
            status=StatementStatus.DRAFT if payable else StatementStatus.ROLLED_OVER,
            total=total,
            minimum_payout=minimum,
        )
        if payable:
            StatementLine.objects.bulk_create(
                StatementLine(statement=statement, entry_id=entry_id)
                for entry_id in candidates.filter(currency=currency)
                .order_by("id")
                .values_list("id", flat=True)
            )
            created += 1
        else:
            rolled_over += 1
    return BuildResult(created=created, rolled_over=rolled_over)


def statements_build(
    *, date_from: dt.date, date_to: dt.date, today: dt.date | None = None
) -> BuildResult:
    """Build statements for every affiliate's billing periods that end within
    [date_from, date_to] and are closed (ended before `today`), oldest first."""
    today = today or timezone.now().date()
    last_day = min(date_to, today - dt.timedelta(days=1))
    created = rolled_over = 0
    affiliates = Affiliate.objects.filter(ledger_entries__isnull=False).distinct().order_by("id")
    for affiliate_id, billing_period in affiliates.values_list("id", "billing_period"):
        start, end = period_containing(period=billing_period, day=date_from)
        while end <= last_day:
            if end >= date_from:
                result = statement_build_for_period(
                    affiliate_id=affiliate_id, period_start=start, period_end=end
                )
                created += result.created
                rolled_over += result.rolled_over
            start, end = period_containing(period=billing_period, day=end + dt.timedelta(days=1))
    return BuildResult(created=created, rolled_over=rolled_over)


@transaction.atomic
def statement_approve(*, statement_id: int, user_id: int, now: dt.datetime | None = None) -> bool:
    """Draft -> approved. Returns False when it was already approved or paid (a repeat)."""
    statement = Statement.objects.select_for_update().get(pk=statement_id)
    if statement.status in (StatementStatus.APPROVED, StatementStatus.PAID):
        return False
    if statement.status != StatementStatus.DRAFT:
        raise CommissionError("statement_not_approvable", f"{statement} is {statement.status}")
    statement.status = StatementStatus.APPROVED
    statement.approved_at = now or timezone.now()
    statement.approved_by_id = user_id
    statement.save(update_fields=["status", "approved_at", "approved_by"])
    return True


@transaction.atomic
def statement_mark_paid(*, statement_id: int, user_id: int, now: dt.datetime | None = None) -> bool:
    """Approved -> paid, writing the payout entry (minus the statement's total). Returns False
    when it was already paid: a statement is paid at most once (also a database rule)."""
    statement = Statement.objects.select_for_update().get(pk=statement_id)
    if statement.status == StatementStatus.PAID:
        return False
    if statement.status != StatementStatus.APPROVED:
        raise CommissionError("statement_not_approved", f"{statement} is {statement.status}")
    now = now or timezone.now()
    LedgerEntry.objects.create(
        affiliate_id=statement.affiliate_id,
        kind=EntryKind.PAYOUT,
        amount=-statement.total,
        currency=statement.currency,
        statement=statement,
        memo=f"statement {statement.pk}",
        available_at=now,
    )
    statement.status = StatementStatus.PAID
    statement.paid_at = now
    statement.paid_by_id = user_id
    statement.save(update_fields=["status", "paid_at", "paid_by"])
    return True
