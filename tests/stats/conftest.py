"""A known dataset for exact stats numbers.

Affiliate A on offers O1 (goals lead, sale) and O2 (goal lead), all USD:

    click  offer sub1 at (UTC)              unique   conversions
    c1     O1    fb   2024-03-01 10:15      yes      lead approved 2.50 @10:30,
                                                    sale approved 10.00 @10:45
    c2     O1    fb   2024-03-01 10:20      yes      lead pending 2.50 @10:50
    c3     O1    fb   2024-03-01 10:25      no       -
    c4     O1    gg   2024-03-01 11:05      yes      lead rejected 2.50 @11:10
    c5     O2    fb   2024-03-01 14:00      yes      lead reversed 1.00 @14:30
    c6     O2    fb   2024-03-01 14:10      yes      -
    c7     O1    fb   2024-03-02 23:30      yes      lead approved 2.50 @23:30 (2024-03-03 in Tokyo)

Affiliate B (noise that A must never see): one click and one approved conversion on O1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.offers.models import ConversionStatus, Goal, Offer
from apps.partners.models import Affiliate
from tests import factories


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC)


@dataclass
class Dataset:
    aff_a: Affiliate
    aff_b: Affiliate
    o1: Offer
    o2: Offer
    lead1: Goal
    sale1: Goal
    lead2: Goal


@pytest.fixture
def dataset(db) -> Dataset:
    advertiser = factories.AdvertiserFactory()
    aff_a = factories.AffiliateFactory(name="A")
    aff_b = factories.AffiliateFactory(name="B")
    o1 = factories.OfferFactory(advertiser=advertiser, name="O1")
    o2 = factories.OfferFactory(advertiser=advertiser, name="O2")
    lead1 = factories.GoalFactory(offer=o1, code="lead", payout=Decimal("2.50"))
    sale1 = factories.GoalFactory(
        offer=o1, code="sale", is_default=False, payout=Decimal("10"), revenue=Decimal("15")
    )
    lead2 = factories.GoalFactory(offer=o2, code="lead", payout=Decimal("1.00"))

    def click(name: str, offer: Offer, sub1: str, when: datetime, *, unique: bool = True, aff=None):
        return factories.ClickFactory(
            click_id=name,
            offer=offer,
            affiliate=aff or aff_a,
            sub1=sub1,
            created_at=when,
            is_unique=unique,
        )

    def conv(clk, goal: Goal, status: str, payout: str, revenue: str, when: datetime) -> None:  # noqa: PLR0917
        factories.ConversionFactory(
            click=clk,
            goal=goal,
            status=status,
            payout=Decimal(payout),
            revenue=Decimal(revenue),
            created_at=when,
        )

    c1 = click("c1", o1, "fb", at(1, 10, 15))
    c2 = click("c2", o1, "fb", at(1, 10, 20))
    click("c3", o1, "fb", at(1, 10, 25), unique=False)
    c4 = click("c4", o1, "gg", at(1, 11, 5))
    c5 = click("c5", o2, "fb", at(1, 14, 0))
    click("c6", o2, "fb", at(1, 14, 10))
    c7 = click("c7", o1, "fb", at(2, 23, 30))
    conv(c1, lead1, ConversionStatus.APPROVED, "2.50", "4.00", at(1, 10, 30))
    conv(c1, sale1, ConversionStatus.APPROVED, "10.00", "15.00", at(1, 10, 45))
    conv(c2, lead1, ConversionStatus.PENDING, "2.50", "4.00", at(1, 10, 50))
    conv(c4, lead1, ConversionStatus.REJECTED, "2.50", "4.00", at(1, 11, 10))
    conv(c5, lead2, ConversionStatus.REVERSED, "1.00", "2.00", at(1, 14, 30))
    conv(c7, lead1, ConversionStatus.APPROVED, "2.50", "4.00", at(2, 23, 30))

    b1 = click("b1", o1, "fb", at(1, 10, 0), aff=aff_b)
    conv(b1, lead1, ConversionStatus.APPROVED, "2.50", "4.00", at(1, 10, 5))
    return Dataset(aff_a, aff_b, o1, o2, lead1, sale1, lead2)
