"""Reads over the ledger: balances by hold state, statement lines, and the reconciliation."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from apps.commissions.models import AccrualQueue, LedgerEntry, Statement, TierReached
from apps.commissions.sql import minor_units_sql

_ZERO = Decimal("0")


@dataclass(frozen=True)
class Balance:
    """One currency of an affiliate's money. pending + available == total, always:
    pending: not yet past its hold; available: past its hold and not paid out yet (it may sit
    on a draft or approved statement); paid: paid out, ever; total: the sum of every entry."""

    currency: str
    pending: Decimal
    available: Decimal
    paid: Decimal
    total: Decimal


_BALANCE_SQL = """
SELECT e.currency,
       COALESCE(SUM(e.amount) FILTER (WHERE e.kind <> 'payout' AND e.available_at > %(now)s), 0),
       COALESCE(SUM(e.amount) FILTER (
           WHERE e.kind <> 'payout' AND e.available_at <= %(now)s
             AND (s.status IS NULL OR s.status <> 'paid')), 0),
       COALESCE(-SUM(e.amount) FILTER (WHERE e.kind = 'payout'), 0),
       SUM(e.amount)
FROM commissions_ledgerentry e
LEFT JOIN commissions_statementline l ON l.entry_id = e.id
LEFT JOIN commissions_statement s ON s.id = l.statement_id
WHERE e.affiliate_id = %(affiliate_id)s
GROUP BY e.currency
ORDER BY e.currency
"""


def balance_breakdown_for_affiliate(
    *, affiliate_id: int, now: dt.datetime | None = None
) -> list[Balance]:
    with connection.cursor() as cursor:
        cursor.execute(_BALANCE_SQL, {"now": now or timezone.now(), "affiliate_id": affiliate_id})
        return [Balance(*row) for row in cursor.fetchall()]


def statement_list_for_affiliate(*, affiliate_id: int) -> QuerySet[Statement]:
    return Statement.objects.filter(affiliate_id=affiliate_id).order_by("-period_start", "currency")


def tier_reached_list_for_affiliate(
    *, affiliate_id: int, month: dt.date | None = None
) -> QuerySet[TierReached]:
    """The volume tiers the affiliate reached, newest month first; one month only if given."""
    rows = TierReached.objects.filter(affiliate_id=affiliate_id).select_related("tier", "offer")
    if month is not None:
        rows = rows.filter(month=month.replace(day=1))
    return rows.order_by("-month", "offer_id", "reached_at", "id")


def accrual_queue_length() -> int:
    """Conversion changes waiting for the accrual job (a conversion may be queued twice)."""
    return AccrualQueue.objects.count()


def statement_entries(*, statement: Statement) -> QuerySet[LedgerEntry]:
    """The statement's ledger entries, oldest first, with their conversions."""
    return (
        LedgerEntry.objects.filter(statement_line__statement=statement)
        .select_related("conversion", "conversion__offer", "conversion__goal")
        .order_by("id")
    )


# --- reconciliation -----------------------------------------------------------------------------

_CHECKS: dict[str, str] = {
    # Balances: what we show as owed (pending + available: entries not on a paid statement) is
    # the sum of all entries, payouts included, per affiliate and currency.
    "balance_not_sum_of_entries": """
        SELECT * FROM (
            SELECT e.affiliate_id, e.currency,
                   COALESCE(SUM(e.amount) FILTER (WHERE e.kind <> 'payout'
                       AND (s.status IS NULL OR s.status <> 'paid')), 0) AS owed,
                   SUM(e.amount) AS entries
            FROM commissions_ledgerentry e
            LEFT JOIN commissions_statementline l ON l.entry_id = e.id
            LEFT JOIN commissions_statement s ON s.id = l.statement_id
            GROUP BY e.affiliate_id, e.currency
        ) b WHERE owed <> entries
    """,
    # Every approved, payable conversion has a live (unreversed) commission.
    "approved_without_commission": """
        SELECT c.id, c.affiliate_id, c.payout, c.currency FROM conversions_conversion c
        WHERE c.status = 'approved' AND c.payout > 0 AND NOT c.is_over_cap
          AND c.updated_at < %(settled_before)s
          AND (SELECT count(*) FILTER (WHERE kind = 'commission')
                    - count(*) FILTER (WHERE kind = 'reversal')
               FROM commissions_ledgerentry WHERE conversion_id = c.id) < 1
    """,
    # No rejected or reversed conversion keeps a live commission.
    "rejected_with_live_commission": """
        SELECT c.id, c.status FROM conversions_conversion c
        WHERE c.status IN ('rejected', 'reversed') AND c.updated_at < %(settled_before)s
          AND (SELECT count(*) FILTER (WHERE kind = 'commission')
                    - count(*) FILTER (WHERE kind = 'reversal')
               FROM commissions_ledgerentry WHERE conversion_id = c.id) > 0
    """,
    # A reversal takes back exactly its commission: same cycle, affiliate, currency, minus amount.
    "reversal_not_matching_commission": """
        SELECT r.id, r.conversion_id, r.cycle, r.amount, c.amount FROM commissions_ledgerentry r
        LEFT JOIN commissions_ledgerentry c ON c.conversion_id = r.conversion_id
             AND c.kind = 'commission' AND c.cycle = r.cycle
        WHERE r.kind = 'reversal' AND (c.id IS NULL OR c.amount <> -r.amount
             OR c.affiliate_id <> r.affiliate_id OR c.currency <> r.currency)
    """,
    # A conversion's entries alternate: commission n is followed only by reversal n.
    "commission_cycles_out_of_order": """
        SELECT conversion_id, count(*) FILTER (WHERE kind = 'commission') AS commissions,
               count(*) FILTER (WHERE kind = 'reversal') AS reversals,
               max(cycle) FILTER (WHERE kind = 'commission') AS last_cycle
        FROM commissions_ledgerentry WHERE conversion_id IS NOT NULL
        GROUP BY conversion_id
        HAVING count(*) FILTER (WHERE kind = 'commission')
                   - count(*) FILTER (WHERE kind = 'reversal') NOT IN (0, 1)
            OR max(cycle) FILTER (WHERE kind = 'commission')
                   <> count(*) FILTER (WHERE kind = 'commission') - 1
    """,
    # A referral entry is its commission's share: same conversion and cycle, same currency, to
    # another affiliate, `rate` percent of the commission rounded half-up to the minor unit.
    "referral_not_matching_commission": """
        SELECT f.id, f.conversion_id, f.cycle, f.amount, c.amount, f.rate
        FROM commissions_ledgerentry f
        LEFT JOIN commissions_ledgerentry c ON c.conversion_id = f.conversion_id
             AND c.kind = 'commission' AND c.cycle = f.cycle
        WHERE f.kind = 'referral' AND (c.id IS NULL OR f.rate IS NULL OR f.amount <= 0
             OR f.currency <> c.currency OR f.affiliate_id = c.affiliate_id
             OR f.amount <> round(c.amount * f.rate / 100, {scale}))
    """.replace("{scale}", minor_units_sql("c.currency")),
    # A referral reversal takes back exactly its referral, and only once the commission that
    # referral was cut from has been reversed.
    "referral_reversal_not_matching": """
        SELECT r.id, r.conversion_id, r.cycle, r.amount, f.amount FROM commissions_ledgerentry r
        LEFT JOIN commissions_ledgerentry f ON f.conversion_id = r.conversion_id
             AND f.kind = 'referral' AND f.cycle = r.cycle
        WHERE r.kind = 'referral_reversal' AND (f.id IS NULL OR f.amount <> -r.amount
             OR f.affiliate_id <> r.affiliate_id OR f.currency <> r.currency
             OR NOT EXISTS (SELECT 1 FROM commissions_ledgerentry x
                            WHERE x.conversion_id = r.conversion_id AND x.kind = 'reversal'
                              AND x.cycle = r.cycle))
    """,
    # A referral lives exactly as long as its commission: reversed with it.
    "referral_live_after_commission_reversed": """
        SELECT f.id, f.conversion_id, f.cycle, f.affiliate_id FROM commissions_ledgerentry f
        JOIN commissions_ledgerentry x ON x.conversion_id = f.conversion_id
             AND x.kind = 'reversal' AND x.cycle = f.cycle
        WHERE f.kind = 'referral' AND x.created_at < %(settled_before)s
          AND NOT EXISTS (SELECT 1 FROM commissions_ledgerentry y
                          WHERE y.conversion_id = f.conversion_id
                            AND y.kind = 'referral_reversal' AND y.cycle = f.cycle)
    """,
    # A tier reached was reached by the affiliate's own conversion on the tier's offer, at that
    # conversion's time; a private tier only by its affiliate.
    "tier_reached_inconsistent": """
        SELECT r.id, r.affiliate_id, r.tier_id, r.month, r.conversion_id
        FROM commissions_tierreached r
        JOIN offers_payouttier t ON t.id = r.tier_id
        JOIN conversions_conversion c ON c.id = r.conversion_id
        WHERE t.offer_id <> r.offer_id OR c.offer_id <> r.offer_id
           OR c.affiliate_id <> r.affiliate_id OR c.created_at <> r.reached_at
           OR (t.affiliate_id IS NOT NULL AND t.affiliate_id <> r.affiliate_id)
           OR (t.goal_id IS NOT NULL AND t.goal_id <> c.goal_id)
    """,
    # A commission paid at a tier: the credited affiliate had reached it on that offer before
    # (or at) the conversion, in the same month; the tier's scope covers the conversion.
    "tier_commission_not_matching": """
        SELECT e.id, e.conversion_id, e.tier_reached_id FROM commissions_ledgerentry e
        JOIN commissions_tierreached r ON r.id = e.tier_reached_id
        JOIN offers_payouttier t ON t.id = r.tier_id
        JOIN conversions_conversion c ON c.id = e.conversion_id
        WHERE e.kind <> 'commission' OR r.affiliate_id <> e.affiliate_id
           OR r.offer_id <> c.offer_id OR r.reached_at > c.created_at
           OR c.created_at >= r.month + interval '1 month 1 day'
           OR (t.goal_id IS NOT NULL AND t.goal_id <> c.goal_id)
    """,
    # A statement's total is the sum of its lines (rolled-over ones have none).
    "statement_total_not_sum_of_lines": """
        SELECT s.id, s.total, COALESCE(SUM(e.amount), 0) AS lines
        FROM commissions_statement s
        LEFT JOIN commissions_statementline l ON l.statement_id = s.id
        LEFT JOIN commissions_ledgerentry e ON e.id = l.entry_id
        WHERE s.status <> 'rolled_over'
        GROUP BY s.id, s.total HAVING s.total <> COALESCE(SUM(e.amount), 0)
    """,
    # Paid statements, and only those, have a payout entry of exactly minus their total.
    "paid_statement_payout_mismatch": """
        SELECT s.id, s.status, s.total, p.amount FROM commissions_statement s
        LEFT JOIN commissions_ledgerentry p ON p.statement_id = s.id AND p.kind = 'payout'
        WHERE (s.status = 'paid' AND (p.id IS NULL OR p.amount <> -s.total
                   OR p.currency <> s.currency OR p.affiliate_id <> s.affiliate_id))
           OR (s.status <> 'paid' AND p.id IS NOT NULL)
    """,
    # Entries on a statement belong to its affiliate and currency.
    "statement_line_foreign": """
        SELECT l.statement_id, e.id FROM commissions_statementline l
        JOIN commissions_statement s ON s.id = l.statement_id
        JOIN commissions_ledgerentry e ON e.id = l.entry_id
        WHERE e.affiliate_id <> s.affiliate_id OR e.currency <> s.currency OR e.kind = 'payout'
    """,
}


@dataclass(frozen=True)
class Drift:
    check: str
    rows: list[tuple[object, ...]]


def ledger_check(*, settled_before: dt.datetime | None = None) -> list[Drift]:
    """Every reconciliation rule that does not hold, with the offending rows (at most 100 each).
    Conversions changed after `settled_before` are skipped by the conversion checks: the accrual
    job has not had its turn on them yet."""
    params = {"settled_before": settled_before or timezone.now()}
    drifts: list[Drift] = []
    with connection.cursor() as cursor:
        for name, sql in _CHECKS.items():
            cursor.execute(f"{sql} LIMIT 100", params)
            rows = [tuple(row) for row in cursor.fetchall()]
            if rows:
                drifts.append(Drift(check=name, rows=rows))
    return drifts
