"""What a conversion pays the affiliate and earns from the advertiser.

A rule is fixed (an amount), percent (of the sale amount) or both (an amount plus a percent).
Each result is rounded once, half-up to the currency's minor unit (apps.common.money).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from apps.common.errors import DomainError
from apps.common.money import money_round
from apps.offers.models import CustomPayout, Goal, PayoutType


class AmountRequired(DomainError):
    code = "amount_required"


@dataclass(frozen=True)
class PriceRule:
    kind: str  # PayoutType
    amount: Decimal  # fixed amount (fixed, both) or the percent (percent)
    percent: Decimal = Decimal(0)  # the percent part of "both"

    def apply(self, *, sale_amount: Decimal | None, currency: str) -> Decimal:
        if self.kind == PayoutType.PERCENT:
            if sale_amount is None:
                raise AmountRequired
            return money_round(sale_amount * self.amount / Decimal(100), currency)
        if self.kind == PayoutType.BOTH:
            # No sale amount: the fixed part alone (a lead on a CPA + revenue-share deal).
            variable = (sale_amount or Decimal(0)) * self.percent / Decimal(100)
            return money_round(self.amount + variable, currency)
        return money_round(self.amount, currency)


def payout_rule(goal: Goal, custom: CustomPayout | None = None) -> PriceRule:
    source = custom or goal
    return PriceRule(kind=source.payout_type, amount=source.payout, percent=source.payout_percent)


def revenue_rule(goal: Goal) -> PriceRule:
    return PriceRule(kind=goal.revenue_type, amount=goal.revenue, percent=goal.revenue_percent)
