"""Property: whatever happens to conversions and however the job runs (full rescan, per
conversion, from the queue, or killed halfway), the ledger and the tiers reached are exactly what
a from-scratch replay of the rules gives (volume tiers and referral commissions included), and a
final full run reconciles the ledger with the conversions' current state."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.commissions.models import LedgerEntry, TierReached
from apps.commissions.selectors import ledger_check
from apps.commissions.services import (
    balance_for_affiliate,
    commission_accrue,
    commission_accrue_queued,
)
from apps.common.money import money_round
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus, PayoutTier, PayoutType
from apps.offers.pricing import AmountRequired, PriceRule
from apps.partners.models import Affiliate
from tests import factories

pytestmark = pytest.mark.django_db

UTC = dt.UTC
STATUSES = list(ConversionStatus.values)
CURRENCIES = ["USD", "EUR", "JPY"]
OFFER_TZ = "Europe/Berlin"
# Around the end of March in Berlin (UTC+2 from March 29): 22:00 UTC is April 1 00:00 there.
TIMES = [
    dt.datetime(2026, 3, 15, 9, 0, tzinfo=UTC),
    dt.datetime(2026, 3, 31, 21, 0, tzinfo=UTC),
    dt.datetime(2026, 3, 31, 21, 59, tzinfo=UTC),
    dt.datetime(2026, 3, 31, 22, 0, tzinfo=UTC),
    dt.datetime(2026, 3, 31, 23, 30, tzinfo=UTC),
    dt.datetime(2026, 4, 1, 10, 0, tzinfo=UTC),
]
REFERRAL_PERCENT = Decimal("12.5")
REFERRAL_ENDS_AT = TIMES[3]

# Edge values often: amounts whose 12.5 % share ends in exactly half a minor unit (0.04 USD,
# 4 JPY), amounts either side of the Silver tier's 40, zero.
payouts = st.one_of(
    st.sampled_from([Decimal(v) for v in ("0", "0.04", "0.12", "4", "12", "39.99", "40.01")]),
    st.decimals(min_value=0, max_value=Decimal("9999.99"), places=2),
)
sale_amounts = st.one_of(
    st.none(),
    st.sampled_from([Decimal("0"), Decimal("0.05"), Decimal("300.05")]),
    st.decimals(min_value=0, max_value=Decimal("999.99"), places=2),
)

# Mostly approved and under the cap, so that tiers are reached and referrals earned often.
new_statuses = st.sampled_from(["approved"] * 5 + STATUSES)
new = st.tuples(
    st.just("new"),
    payouts,
    st.sampled_from(CURRENCIES),
    new_statuses,
    st.sampled_from([False] * 5 + [True]),  # over cap
    st.integers(0, 1),  # which affiliate (1 was referred by 0)
    st.integers(0, len(TIMES) - 1),  # when
    sale_amounts,
)
status = st.tuples(st.just("status"), st.integers(0, 30), st.sampled_from(STATUSES))
payout = st.tuples(st.just("payout"), st.integers(0, 30), payouts)
run_all = st.tuples(st.just("run_all"))
run_one = st.tuples(st.just("run_one"), st.integers(0, 30))
# A run killed halfway: only some of the conversions got their turn.
run_some = st.tuples(st.just("run_some"), st.sets(st.integers(0, 30), max_size=5))
# The beat job: the whole queue, or one small batch of it (a run that stopped after a batch).
run_queue = st.tuples(st.just("run_queue"), st.sampled_from([None, 1, 2]))
operations = st.lists(
    st.one_of(new, new, new, status, payout, run_all, run_one, run_some, run_queue),
    min_size=10,
    max_size=30,
)

Entry = tuple[str, int, Decimal, str, int]  # kind, cycle, amount, currency, affiliate


def _month(moment: dt.datetime) -> dt.date:
    return moment.astimezone(zoneinfo.ZoneInfo(OFFER_TZ)).date().replace(day=1)


def _counts(conversion: Conversion) -> bool:
    return conversion.status == ConversionStatus.APPROVED and not conversion.is_over_cap


def _payable(conversion: Conversion) -> bool:
    return _counts(conversion) and conversion.payout > 0


@dataclass
class Model:
    """The rules, replayed in plain Python: the from-scratch recomputation."""

    tiers: list[PayoutTier]
    referrer: dict[int, int]  # referred affiliate -> its referrer
    entries: dict[int, list[Entry]] = field(default_factory=dict)
    reached: dict[tuple[int, int, dt.date], tuple[dt.datetime, int]] = field(default_factory=dict)
    queue: list[int] = field(default_factory=list)

    def tier_amount(self, tier: PayoutTier, conversion: Conversion) -> Decimal | None:
        rule = PriceRule(kind=tier.payout_type, amount=tier.payout, percent=tier.payout_percent)
        try:
            return rule.apply(sale_amount=conversion.sale_amount, currency=conversion.currency)
        except AmountRequired:
            return None

    def in_scope(self, tier: PayoutTier, conversion: Conversion) -> bool:
        return (tier.goal_id is None or tier.goal_id == conversion.goal_id) and (
            tier.affiliate_id is None or tier.affiliate_id == conversion.affiliate_id
        )

    def run(self, batch: list[Conversion], everyone: list[Conversion]) -> None:
        """One batch: tiers reached, commissions (with referrals), reversals, referral
        reversals, in that order, like the job's four statements."""
        groups = {(c.affiliate_id, _month(c.created_at)) for c in batch if _counts(c)}
        for affiliate_id, month in sorted(groups, key=str):
            for tier in self.tiers:
                key = (affiliate_id, tier.pk, month)
                if key in self.reached or tier.affiliate_id not in (None, affiliate_id):
                    continue
                counted = sorted(
                    (
                        c
                        for c in everyone
                        if c.affiliate_id == affiliate_id
                        and _counts(c)
                        and _month(c.created_at) == month
                        and self.in_scope(tier, c)
                    ),
                    key=lambda c: (c.created_at, c.pk),
                )
                if len(counted) >= tier.threshold:
                    nth = counted[tier.threshold - 1]
                    self.reached[key] = (nth.created_at, nth.pk)
        for conversion in sorted(batch, key=lambda c: c.pk):
            entries = self.entries.setdefault(conversion.pk, [])
            kinds = [e[0] for e in entries]
            if _payable(conversion) and kinds.count("commission") == kinds.count("reversal"):
                self.credit(conversion, entries, cycle=kinds.count("commission"))
        for conversion in sorted(batch, key=lambda c: c.pk):
            if conversion.status not in ("rejected", "reversed"):
                continue
            entries = self.entries.get(conversion.pk, [])
            for kind, back in (("commission", "reversal"), ("referral", "referral_reversal")):
                taken_back = {e[1] for e in entries if e[0] == back}
                for _, cycle, amount, currency, owner in [e for e in entries if e[0] == kind]:
                    if cycle in taken_back:
                        continue
                    if kind == "referral" and not any(
                        e[0] == "reversal" and e[1] == cycle for e in entries
                    ):
                        continue
                    entries.append((back, cycle, -amount, currency, owner))

    def credit(self, conversion: Conversion, entries: list[Entry], cycle: int) -> None:
        amount = conversion.payout
        month = _month(conversion.created_at)
        for tier in self.tiers:
            reached = self.reached.get((conversion.affiliate_id, tier.pk, month))
            if reached is None or reached[0] > conversion.created_at:
                continue
            if not self.in_scope(tier, conversion):
                continue
            tiered = self.tier_amount(tier, conversion)
            if tiered is not None and tiered > amount:
                amount = tiered
        entries.append(("commission", cycle, amount, conversion.currency, conversion.affiliate_id))
        referrer = self.referrer.get(conversion.affiliate_id)
        if referrer is not None and conversion.created_at < REFERRAL_ENDS_AT:
            share = money_round(amount * REFERRAL_PERCENT / 100, conversion.currency)
            if share > 0:
                entries.append(("referral", cycle, share, conversion.currency, referrer))

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


def _db_reached() -> dict[tuple[int, int, dt.date], tuple[dt.datetime, int]]:
    return {
        (affiliate_id, tier_id, month): (reached_at, conversion_id)
        for affiliate_id, tier_id, month, reached_at, conversion_id in (
            TierReached.objects.values_list(
                "affiliate_id", "tier_id", "month", "reached_at", "conversion_id"
            )
        )
    }


class Rollback(Exception):
    pass


@pytest.fixture
def world(goal):
    offer = goal.offer
    offer.timezone = OFFER_TZ
    offer.save()
    referrer = factories.AffiliateFactory()
    referred = factories.AffiliateFactory()
    Affiliate.objects.filter(pk=referred.pk).update(
        referrer=referrer, referral_percent=REFERRAL_PERCENT, referral_ends_at=REFERRAL_ENDS_AT
    )
    tiers = [
        PayoutTier.objects.create(offer=offer, name="Silver", threshold=2, payout=Decimal("40")),
        PayoutTier.objects.create(
            offer=offer,
            name="Gold (private)",
            threshold=3,
            affiliate=referred,
            payout_type=PayoutType.BOTH,
            payout=Decimal("10"),
            payout_percent=Decimal("10"),
        ),
    ]
    return goal, [referrer, referred], tiers


@settings(
    max_examples=150,
    database=None,  # no .hypothesis/ example store in the working tree
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_ledger_equals_a_replay_of_the_rules(world, ops):
    goal, affiliates, tiers = world
    try:
        with transaction.atomic():
            _check(goal, affiliates, tiers, ops)
            raise Rollback
    except Rollback:
        pass


def _check(goal, affiliates, tiers, ops) -> None:
    model = Model(tiers=tiers, referrer={affiliates[1].pk: affiliates[0].pk})
    conversions: list[Conversion] = []

    def pick(index: int) -> Conversion | None:
        return conversions[index % len(conversions)] if conversions else None

    def refresh() -> None:
        for conversion in conversions:
            conversion.refresh_from_db()

    def run(ids: list[int]) -> None:
        refresh()
        chosen = {c.pk: c for c in conversions if c.pk in set(ids)}
        model.run(list(chosen.values()), conversions)

    for op in ops:
        kind = op[0]
        if kind == "new":
            _, amount, currency, state, over_cap, who, when, sale_amount = op
            click = factories.ClickFactory(offer=goal.offer, affiliate=affiliates[who])
            conversion = factories.ConversionFactory(
                click=click,
                goal=goal,
                payout=money_round(amount, currency),
                currency=currency,
                status=state,
                is_over_cap=over_cap,
                created_at=TIMES[when],
                sale_amount=sale_amount,
            )
            conversions.append(conversion)
            if state == ConversionStatus.APPROVED:
                model.queue.append(conversion.pk)
        elif kind == "status" and (conversion := pick(op[1])):
            if Conversion.objects.filter(pk=conversion.pk).exclude(status=op[2]).exists():
                model.queue.append(conversion.pk)
            Conversion.objects.filter(pk=conversion.pk).update(status=op[2])
        elif kind == "payout" and (conversion := pick(op[1])):
            amount = money_round(op[2], conversion.currency)
            if Conversion.objects.filter(pk=conversion.pk).exclude(payout=amount).exists():
                model.queue.append(conversion.pk)
            Conversion.objects.filter(pk=conversion.pk).update(payout=amount)
        elif kind == "run_all":
            commission_accrue()
            run([c.pk for c in conversions])
        elif kind in ("run_one", "run_some") and conversions:
            ids = sorted({pick(i).pk for i in ([op[1]] if kind == "run_one" else op[1])})
            commission_accrue(conversion_ids=ids)
            model.queue = [pk for pk in model.queue if pk not in ids]
            if ids:
                run(ids)
        elif kind == "run_queue":
            batch_size = op[1]
            if batch_size is None:
                commission_accrue_queued()
                taken, model.queue = model.queue, []
            else:
                with override_settings(COMMISSIONS_ACCRUE_BATCH_SIZE=batch_size):
                    commission_accrue_queued(max_batches=1)
                taken, model.queue = model.queue[:batch_size], model.queue[batch_size:]
            if taken:
                run(taken)
        assert _db_ledger() == model.ledger()
        assert _db_reached() == model.reached

    # A final run (twice: idempotent) reconciles the ledger with the conversions as they are now.
    for _ in range(2):
        commission_accrue()
        run([c.pk for c in conversions])
        assert _db_ledger() == model.ledger()
    assert _db_reached() == model.reached
    for affiliate in affiliates:
        assert balance_for_affiliate(affiliate_id=affiliate.pk) == model.balance(affiliate.pk)
    assert ledger_check() == []
    for conversion in conversions:
        entries = model.entries.get(conversion.pk, [])
        live = sum(e[2] for e in entries if e[0] in ("commission", "reversal"))
        last_credit = [e[2] for e in entries if e[0] == "commission"][-1:] or [Decimal("0")]
        shares = sum(e[2] for e in entries if e[0] in ("referral", "referral_reversal"))
        if _payable(conversion):
            assert live == last_credit[0]
        elif conversion.status in ("rejected", "reversed"):
            assert live == 0
            assert shares == 0  # the referrer gave its share back too
        else:  # pending, zero payout or over cap after a credit: only a rejection takes it back
            assert live in (Decimal("0"), last_credit[0])
