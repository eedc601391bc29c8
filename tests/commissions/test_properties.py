"""Property: whatever happens to conversions and however the job runs (whole, per conversion,
or killed halfway), the ledger is exactly what a from-scratch replay of the rules gives, and a
final full run reconciles it with the conversions' current state."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.commissions.models import LedgerEntry
from apps.commissions.selectors import ledger_check
from apps.commissions.services import balance_for_affiliate, commission_accrue
from apps.common.money import money_round
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus
from tests import factories

pytestmark = pytest.mark.django_db

STATUSES = list(ConversionStatus.values)
CURRENCIES = ["USD", "EUR", "JPY"]
payouts = st.decimals(min_value=0, max_value=Decimal("9999.99"), places=2)

new = st.tuples(
    st.just("new"),
    payouts,
    st.sampled_from(CURRENCIES),
    st.sampled_from(STATUSES),
    st.booleans(),  # over cap
    st.integers(0, 1),  # which affiliate
)
status = st.tuples(st.just("status"), st.integers(0, 30), st.sampled_from(STATUSES))
payout = st.tuples(st.just("payout"), st.integers(0, 30), payouts)
run_all = st.tuples(st.just("run_all"))
run_one = st.tuples(st.just("run_one"), st.integers(0, 30))
# A run killed halfway: only some of the conversions got their turn.
run_some = st.tuples(st.just("run_some"), st.sets(st.integers(0, 30), max_size=5))
operations = st.lists(
    st.one_of(new, status, payout, run_all, run_one, run_some), min_size=1, max_size=20
)


@dataclass
class Model:
    """The rules, replayed in plain Python: the from-scratch recomputation."""

    entries: dict[int, list[tuple[str, int, Decimal, str, int]]] = field(default_factory=dict)

    def run(self, conversion: Conversion) -> None:
        entries = self.entries.setdefault(conversion.pk, [])
        commissions = [e for e in entries if e[0] == "commission"]
        reversals = [e for e in entries if e[0] == "reversal"]
        payable = (
            conversion.status == ConversionStatus.APPROVED
            and conversion.payout > 0
            and not conversion.is_over_cap
        )
        if payable and len(commissions) == len(reversals):
            entries.append(
                (
                    "commission",
                    len(commissions),
                    conversion.payout,
                    conversion.currency,
                    conversion.affiliate_id,
                )
            )
        elif conversion.status in ("rejected", "reversed") and len(commissions) > len(reversals):
            _, cycle, amount, currency, affiliate_id = commissions[len(reversals)]
            entries.append(("reversal", cycle, -amount, currency, affiliate_id))

    def ledger(self) -> list[tuple]:
        return sorted(
            (conversion_id, *entry)
            for conversion_id, entries in self.entries.items()
            for entry in entries
        )

    def balance(self, affiliate_id: int) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for entries in self.entries.values():
            for _, _, amount, currency, owner in entries:
                if owner == affiliate_id:
                    totals[currency] = totals.get(currency, Decimal("0")) + amount
        return dict(sorted(totals.items()))


def _db_ledger() -> list[tuple]:
    return sorted(
        LedgerEntry.objects.values_list(
            "conversion_id", "kind", "cycle", "amount", "currency", "affiliate_id"
        )
    )


class Rollback(Exception):
    pass


@pytest.fixture
def world(goal):
    return goal, [factories.AffiliateFactory(), factories.AffiliateFactory()]


@settings(
    max_examples=100,
    database=None,  # no .hypothesis/ example store in the working tree
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_ledger_equals_a_replay_of_the_rules(world, ops):
    goal, affiliates = world
    try:
        with transaction.atomic():
            _check(goal, affiliates, ops)
            raise Rollback
    except Rollback:
        pass


def _check(goal, affiliates, ops) -> None:
    model = Model()
    conversions: list[Conversion] = []

    def pick(index: int) -> Conversion | None:
        return conversions[index % len(conversions)] if conversions else None

    def refresh() -> None:
        for conversion in conversions:
            conversion.refresh_from_db()

    for op in ops:
        kind = op[0]
        if kind == "new":
            _, amount, currency, state, over_cap, who = op
            click = factories.ClickFactory(offer=goal.offer, affiliate=affiliates[who])
            conversions.append(
                factories.ConversionFactory(
                    click=click,
                    goal=goal,
                    payout=money_round(amount, currency),
                    currency=currency,
                    status=state,
                    is_over_cap=over_cap,
                )
            )
        elif kind == "status" and (conversion := pick(op[1])):
            Conversion.objects.filter(pk=conversion.pk).update(status=op[2])
        elif kind == "payout" and (conversion := pick(op[1])):
            amount = money_round(op[2], conversion.currency)
            Conversion.objects.filter(pk=conversion.pk).update(payout=amount)
        elif kind == "run_all":
            commission_accrue()
            refresh()
            for conversion in conversions:
                model.run(conversion)
        elif kind == "run_one" and (conversion := pick(op[1])):
            commission_accrue(conversion_ids=[conversion.pk])
            conversion.refresh_from_db()
            model.run(conversion)
        elif kind == "run_some" and conversions:
            chosen = {pick(i).pk: pick(i) for i in op[1]}
            commission_accrue(conversion_ids=sorted(chosen))
            for conversion in sorted(chosen.values(), key=lambda c: c.pk):
                conversion.refresh_from_db()
                model.run(conversion)
        assert _db_ledger() == model.ledger()

    # A final run (twice: idempotent) reconciles the ledger with the conversions as they are now.
    for _ in range(2):
        commission_accrue()
        refresh()
        for conversion in conversions:
            model.run(conversion)
        assert _db_ledger() == model.ledger()
    for affiliate in affiliates:
        assert balance_for_affiliate(affiliate_id=affiliate.pk) == model.balance(affiliate.pk)
    assert ledger_check() == []
    for conversion in conversions:
        entries = model.entries.get(conversion.pk, [])
        live = sum(e[2] for e in entries)
        last_credit = [e[2] for e in entries if e[0] == "commission"][-1:] or [Decimal("0")]
        payable = (
            conversion.status == "approved" and conversion.payout > 0 and not conversion.is_over_cap
        )
        if payable:
            assert live == last_credit[0]
        elif conversion.status in ("rejected", "reversed"):
            assert live == 0
        else:  # pending, zero payout or over cap after a credit: only a rejection takes it back
            assert live in (Decimal("0"), last_credit[0])
