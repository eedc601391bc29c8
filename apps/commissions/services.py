"""Commissions: approved conversions become ledger entries; reversals become negative entries;
volume tiers raise the payout once reached; referrers earn a share of their referrals'
commissions; closed billing periods become statements; paying a statement writes its payout entry.

Accrual is set-based: a handful of `INSERT ... SELECT ... ON CONFLICT DO NOTHING` statements per
batch of conversions, each batch one transaction:

1. tiers reached: for every (affiliate, offer, month) with an approved conversion in the batch,
   every tier of the offer whose Nth approved conversion that month exists is recorded as reached
   at that conversion's creation time (once: unique per affiliate, tier and month);
2. commissions, and with them, in the same statement, their referral entries;
3. reversals of commissions whose conversion was rejected or reversed;
4. reversals of the referral entries of those commissions.

Idempotent by construction: (conversion, kind, cycle) is unique and the next cycle is derived from
the entries already there, so a rerun, a concurrent run or a run killed halfway and run again all
leave the same ledger. Which conversions a batch looks at: the beat job takes them from the
accrual queue (filled by a database trigger whenever a conversion is approved or changes status,
payout or over-cap flag); by hand, a full rescan or a date range walks the conversions table in
bounded id ranges.

Tiers: a commission is paid at the best of the conversion's own payout and the payout of every
tier the affiliate had reached on that offer in the conversion's month (offer's time zone) at or
before the conversion's creation time; the entry names the tier (memo, `tier_reached`). A tier is
reached when the job first sees the Nth approved conversion; that moment is never moved, so
conversions already credited are not re-priced. A conversion with no payout of its own (0) is not
paid, tier or not.

Referrals: when a commission is written for an affiliate that has a referrer, the referrer is
credited `rate` percent of it (the affiliate's referral_percent, else the network's), rounded
half-up to the currency's minor unit, if the conversion was created before the referral ended;
the entry shares the commission's conversion and cycle, and is reversed when it is.

Holds: an entry is available for payout at `available_at` = the later of (conversion time + the
offer's hold days) and the moment the entry was written, so a late entry never lands in a period
that is already closed. A reversal is available when its commission is (if that is still pending,
the two cancel before either can be paid) or now, when the money was already available or paid: a
negative line on the next statement. Referral entries follow their commission.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.commissions.models import (
    AccrualQueue,
    EntryKind,
    LedgerEntry,
    Statement,
    StatementLine,
    StatementStatus,
)
from apps.commissions.periods import local_date, period_closes_at, period_containing
from apps.commissions.sql import TIER_AMOUNT_SQL, minor_units_sql
from apps.common.money import money_round
from apps.partners.models import Affiliate

logger = logging.getLogger(__name__)


# `{where}` is filled with one of a few fixed filters on `c` (ids, id range, created_at range),
# never with input; values always go as parameters.

_TIERS_SQL = """
INSERT INTO commissions_tierreached
    (affiliate_id, offer_id, tier_id, month, reached_at, conversion_id, created_at)
SELECT g.affiliate_id, g.offer_id, t.id, g.month, nth.created_at, nth.id, %(now)s
FROM (
    SELECT DISTINCT c.affiliate_id, c.offer_id, o.timezone,
           date_trunc('month', c.created_at AT TIME ZONE o.timezone)::date AS month
    FROM conversions_conversion c
    JOIN offers_offer o ON o.id = c.offer_id
    WHERE {where} AND c.status = 'approved' AND NOT c.is_over_cap
      AND EXISTS (SELECT 1 FROM offers_payouttier t WHERE t.offer_id = c.offer_id)
) g
JOIN offers_payouttier t ON t.offer_id = g.offer_id
     AND (t.affiliate_id IS NULL OR t.affiliate_id = g.affiliate_id)
CROSS JOIN LATERAL (
    SELECT n.id, n.created_at FROM conversions_conversion n
    WHERE n.affiliate_id = g.affiliate_id AND n.offer_id = g.offer_id
      AND (t.goal_id IS NULL OR n.goal_id = t.goal_id)
      AND n.status = 'approved' AND NOT n.is_over_cap
      AND n.created_at >= (g.month::timestamp AT TIME ZONE g.timezone)
      AND n.created_at < ((g.month + interval '1 month') AT TIME ZONE g.timezone)
    ORDER BY n.created_at, n.id
    OFFSET t.threshold - 1 LIMIT 1
) nth
WHERE NOT EXISTS (
    SELECT 1 FROM commissions_tierreached r
    WHERE r.affiliate_id = g.affiliate_id AND r.tier_id = t.id AND r.month = g.month
)
ORDER BY g.affiliate_id, t.id, g.month
ON CONFLICT (affiliate_id, tier_id, month) DO NOTHING
"""

# Commission for every payable conversion whose every commission has been reversed (or that has
# none): cycle = how many commissions it already had; amount = its payout, or the best tier's.
# The referral entries of exactly the commissions this statement wrote, in the same statement.
_ACCRUE_SQL = """
WITH due AS (
    SELECT c.id, c.affiliate_id, c.currency, c.created_at, c.payout, o.hold_days,
           s.n_commission, best.reached_id, best.tier_id, best.tier_name, best.amount AS tier_amount
    FROM conversions_conversion c
    JOIN offers_offer o ON o.id = c.offer_id
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE e.kind = 'commission') AS n_commission,
               count(*) FILTER (WHERE e.kind = 'reversal') AS n_reversal
        FROM commissions_ledgerentry e
        WHERE e.conversion_id = c.id AND e.kind IN ('commission', 'reversal')
    ) s
    LEFT JOIN LATERAL (
        SELECT r.id AS reached_id, t.id AS tier_id, t.name AS tier_name, a.amount
        FROM commissions_tierreached r
        JOIN offers_payouttier t ON t.id = r.tier_id
        CROSS JOIN LATERAL (SELECT {tier_amount} AS amount) a
        WHERE r.affiliate_id = c.affiliate_id AND r.offer_id = c.offer_id
          -- index range: the month can only be this one or the one before, in any time zone
          AND r.month BETWEEN (c.created_at - interval '32 days')::date
                          AND (c.created_at + interval '1 day')::date
          -- reached in the month of the conversion, at or before it (the time zone of the
          -- offer is only looked at for offers with a tier reached)
          AND r.reached_at <= c.created_at
          AND c.created_at < ((r.month + interval '1 month') AT TIME ZONE o.timezone)
          AND (t.goal_id IS NULL OR t.goal_id = c.goal_id)
          AND (t.affiliate_id IS NULL OR t.affiliate_id = c.affiliate_id)
          AND a.amount > c.payout
        ORDER BY a.amount DESC, t.threshold DESC, t.id
        LIMIT 1
    ) best ON true
    WHERE {where} AND c.status = 'approved' AND c.payout > 0 AND NOT c.is_over_cap
      AND s.n_commission = s.n_reversal
),
credited AS (
    INSERT INTO commissions_ledgerentry
        (affiliate_id, kind, amount, currency, conversion_id, cycle, memo, created_at,
         available_at, tier_reached_id)
    SELECT d.affiliate_id, 'commission', COALESCE(d.tier_amount, d.payout), d.currency, d.id,
           d.n_commission,
           CASE WHEN d.tier_id IS NULL THEN 'conversion ' || d.id
                ELSE left('conversion ' || d.id || ', tier #' || d.tier_id || ' ' || d.tier_name,
                          255)
           END,
           %(now)s, GREATEST(d.created_at + make_interval(days => d.hold_days), %(now)s),
           d.reached_id
    FROM due d
    ORDER BY d.id
    ON CONFLICT (conversion_id, kind, cycle) WHERE conversion_id IS NOT NULL DO NOTHING
    RETURNING affiliate_id, amount, currency, conversion_id, cycle, available_at
),
referred AS (
    INSERT INTO commissions_ledgerentry
        (affiliate_id, kind, amount, currency, conversion_id, cycle, memo, created_at,
         available_at, rate)
    SELECT a.referrer_id, 'referral', x.amount, n.currency, n.conversion_id, n.cycle,
           'referral: affiliate ' || n.affiliate_id || ', conversion ' || n.conversion_id,
           %(now)s, n.available_at, p.rate
    FROM credited n
    JOIN partners_affiliate a ON a.id = n.affiliate_id AND a.referrer_id IS NOT NULL
    JOIN due d ON d.id = n.conversion_id
    CROSS JOIN LATERAL (
        SELECT COALESCE(a.referral_percent, %(referral_percent)s::numeric) AS rate
    ) p
    CROSS JOIN LATERAL (SELECT round(n.amount * p.rate / 100, {scale}) AS amount) x
    WHERE d.created_at < COALESCE(
          a.referral_ends_at,
          a.created_at + make_interval(days => %(referral_days)s::integer),
          'infinity'::timestamptz)
      AND x.amount > 0
    ORDER BY n.conversion_id
    ON CONFLICT (conversion_id, kind, cycle) WHERE conversion_id IS NOT NULL DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM credited) + (SELECT count(*) FROM referred)
""".replace("{tier_amount}", TIER_AMOUNT_SQL).replace("{scale}", minor_units_sql("n.currency"))

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

# The referrer gives back exactly its referral entry when the commission it was cut from has been
# reversed (written just before, in the same transaction).
_REFERRAL_REVERSE_SQL = """
INSERT INTO commissions_ledgerentry
    (affiliate_id, kind, amount, currency, conversion_id, cycle, memo, created_at, available_at,
     rate)
SELECT f.affiliate_id, 'referral_reversal', -f.amount, f.currency, f.conversion_id, f.cycle,
       'referral reversal: conversion ' || c.id, %(now)s, GREATEST(f.available_at, %(now)s),
       f.rate
FROM conversions_conversion c
JOIN commissions_ledgerentry f ON f.conversion_id = c.id AND f.kind = 'referral'
WHERE {where} AND c.status IN ('rejected', 'reversed')
  AND EXISTS (
      SELECT 1 FROM commissions_ledgerentry x
      WHERE x.conversion_id = f.conversion_id AND x.kind = 'reversal' AND x.cycle = f.cycle
  )
  AND NOT EXISTS (
      SELECT 1 FROM commissions_ledgerentry y
      WHERE y.conversion_id = f.conversion_id AND y.kind = 'referral_reversal'
        AND y.cycle = f.cycle
  )
ORDER BY c.id, f.cycle
ON CONFLICT (conversion_id, kind, cycle) WHERE conversion_id IS NOT NULL DO NOTHING
"""

# Take up to `limit` queued conversions that no other run holds; the rows are deleted in the
# batch's transaction, so they come back if it rolls back.
_DEQUEUE_SQL = """
DELETE FROM commissions_accrualqueue
WHERE id IN (
    SELECT id FROM commissions_accrualqueue ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING conversion_id
"""

# The given conversions are being accrued now: their queue rows are done. Rows another run holds
# are skipped: that run saw them, so it sees their conversions' changes too.
_DEQUEUE_IDS_SQL = """
DELETE FROM commissions_accrualqueue
WHERE id IN (
    SELECT id FROM commissions_accrualqueue WHERE conversion_id = ANY(%(ids)s)
    FOR UPDATE SKIP LOCKED
)
"""

_IDS = "c.id = ANY(%(ids)s)"
_RANGE = "c.id >= %(low)s AND c.id < %(high)s"
_CREATED = " AND c.created_at >= %(created_from)s AND c.created_at < %(created_to)s"


class CommissionError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _batch_size() -> int:
    return int(settings.COMMISSIONS_ACCRUE_BATCH_SIZE)


def _params(now: dt.datetime) -> dict[str, Any]:
    days = int(settings.COMMISSIONS_REFERRAL_DAYS)
    return {
        "now": now,
        "referral_percent": Decimal(settings.COMMISSIONS_REFERRAL_PERCENT),
        "referral_days": days if days > 0 else None,
    }


def _accrue_batch(cursor: Any, where: str, params: dict[str, Any]) -> int:
    """The four accrual statements over the conversions `where` selects, in order. Run inside
    the batch's transaction. Returns the number of ledger entries written."""
    # The planner's cost for these statements is far above jit_above_cost, and compiling them
    # takes longer (~0.8 s each) than running them on a batch: no JIT for the batch.
    cursor.execute("SET LOCAL jit = off")
    cursor.execute(_TIERS_SQL.format(where=where), params)
    cursor.execute(_ACCRUE_SQL.format(where=where), params)
    written = int(cursor.fetchone()[0])
    for sql in (_REVERSE_SQL, _REFERRAL_REVERSE_SQL):
        cursor.execute(sql.format(where=where), params)
        written += int(cursor.rowcount)
    return written


def commission_accrue(
    *,
    conversion_ids: list[int] | None = None,
    created_from: dt.datetime | None = None,
    created_to: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Write missing ledger entries for the given conversions, or (no ids) rescan every
    conversion, or those created in [created_from, created_to), one bounded id range per
    transaction. Returns the number of entries written. The beat job uses
    `commission_accrue_queued` instead; this is the by-hand and per-conversion way in."""
    now = now or timezone.now()
    params = _params(now)
    if conversion_ids is not None:
        if not conversion_ids:
            return 0
        params["ids"] = sorted(set(conversion_ids))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_DEQUEUE_IDS_SQL, params)
            return _accrue_batch(cursor, _IDS, params)
    bounds_sql = "SELECT min(id), max(id) FROM conversions_conversion c"
    where = _RANGE
    if created_from is not None or created_to is not None:
        params["created_from"] = created_from or dt.datetime.min.replace(tzinfo=dt.UTC)
        params["created_to"] = created_to or dt.datetime.max.replace(tzinfo=dt.UTC)
        bounds_sql += " WHERE true" + _CREATED
        where += _CREATED
    with connection.cursor() as cursor:
        cursor.execute(bounds_sql, params)
        low, high = cursor.fetchone()
    if low is None:
        return 0
    written = 0
    step = _batch_size()
    for start in range(low, high + 1, step):
        with transaction.atomic(), connection.cursor() as cursor:
            written += _accrue_batch(cursor, where, {**params, "low": start, "high": start + step})
    return written


@dataclass(frozen=True)
class QueueRun:
    written: int = 0
    conversions: int = 0
    batches: int = 0
    drained: bool = True


def commission_accrue_queued(
    *, now: dt.datetime | None = None, max_batches: int | None = None
) -> QueueRun:
    """The incremental accrual the beat runs: take queued conversions in batches (each batch one
    transaction that deletes its queue rows and writes their entries) until the queue is empty
    or `max_batches` were done (then `drained` is False and the caller runs again). With nothing
    queued it is one indexed DELETE on an empty table."""
    now = now or timezone.now()
    params = _params(now)
    limit = _batch_size()
    written = conversions = batches = 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_DEQUEUE_SQL, {"limit": limit})
            ids = sorted({row[0] for row in cursor.fetchall()})
            if not ids:
                return QueueRun(written, conversions, batches, drained=True)
            written += _accrue_batch(cursor, _IDS, {**params, "ids": ids})
        conversions += len(ids)
        batches += 1
    return QueueRun(written, conversions, batches, drained=not AccrualQueue.objects.exists())


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


@dataclass(frozen=True)
class BuildResult:
    created: int = 0
    rolled_over: int = 0


@transaction.atomic
def statement_build_for_period(
    *, affiliate_id: int, period_start: dt.date, period_end: dt.date
) -> BuildResult:
    """Statements for one affiliate's closed period [period_start, period_end] (days of the
    affiliate's time zone), per currency: every entry available before the period ended (the
    local midnight after its last day) and not on a statement yet. Below the minimum payout the
    statement is recorded as rolled over, with no lines: its entries wait for the next period.
    A period that already has a statement in a currency is never rebuilt."""
    affiliate = Affiliate.objects.select_for_update().get(pk=affiliate_id)
    closes_at = period_closes_at(period_end=period_end, tz_name=affiliate.timezone)
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
            timezone=affiliate.timezone,
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
    *, date_from: dt.date, date_to: dt.date, now: dt.datetime | None = None
) -> BuildResult:
    """Build statements for every affiliate's billing periods that end within
    [date_from, date_to] and are closed at `now`, oldest first. Days are the affiliate's own
    (its time zone): a period is closed once its last local day is over."""
    now = now or timezone.now()
    created = rolled_over = 0
    affiliates = Affiliate.objects.filter(ledger_entries__isnull=False).distinct().order_by("id")
    for affiliate_id, billing_period, tz_name in affiliates.values_list(
        "id", "billing_period", "timezone"
    ):
        try:
            local_today = local_date(now, tz_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            logger.error("affiliate %s: unknown time zone %r, no statements", affiliate_id, tz_name)
            continue
        last_day = min(date_to, local_today - dt.timedelta(days=1))
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
