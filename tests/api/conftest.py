"""A small network with two of everything, so every endpoint can be checked for leaks.

Affiliates A and B, advertisers X and Y. Each has offers, clicks, conversions, postbacks and
ledger entries; every test asserts that one side never sees the other's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.advertisers.models import Advertiser
from apps.commissions.models import EntryKind, LedgerEntry
from apps.conversions.models import Conversion
from apps.offers.models import AccessStatus, ConversionStatus, Goal, Offer, OfferStatus
from apps.offers.models import OfferVisibility as Vis
from apps.partners.models import Affiliate, AffiliatePostback
from apps.tracking.models import Click
from tests import factories

DAY = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.api_key_for(user)}")
    return client


@dataclass
class World:
    adv_x: Advertiser
    adv_y: Advertiser
    aff_a: Affiliate
    aff_b: Affiliate
    offers: dict[str, Offer]
    goals: dict[str, Goal]
    clicks: dict[str, Click]
    conversions: dict[str, Conversion]
    postbacks: dict[str, AffiliatePostback]
    ledger: dict[str, LedgerEntry]
    client_a: APIClient
    client_b: APIClient
    client_x: APIClient
    client_y: APIClient
    client_staff: APIClient


@pytest.fixture
def world(db) -> World:
    adv_x = factories.AdvertiserFactory(name="Advertiser X")
    adv_y = factories.AdvertiserFactory(name="Advertiser Y")
    aff_a = factories.AffiliateFactory(name="Affiliate A")
    aff_b = factories.AffiliateFactory(name="Affiliate B")

    def offer(name: str, adv: Advertiser, visibility: str, **kw: object) -> Offer:
        return factories.OfferFactory(name=name, advertiser=adv, visibility=visibility, **kw)

    offers = {
        # A may run: public, approved (approval-required and private).
        "x_public": offer("x_public", adv_x, Vis.PUBLIC),
        "x_approved": offer("x_approved", adv_x, Vis.APPROVAL_REQUIRED),
        "x_private_approved": offer("x_private_approved", adv_x, Vis.PRIVATE),
        # A may not run these.
        "x_pending": offer("x_pending", adv_x, Vis.APPROVAL_REQUIRED),
        "x_unapplied": offer("x_unapplied", adv_x, Vis.APPROVAL_REQUIRED),
        "x_private": offer("x_private", adv_x, Vis.PRIVATE),
        "x_public_rejected": offer("x_public_rejected", adv_x, Vis.PUBLIC),
        "x_paused": offer("x_paused", adv_x, Vis.PUBLIC, status=OfferStatus.PAUSED),
        "x_approved_paused": offer(
            "x_approved_paused", adv_x, Vis.APPROVAL_REQUIRED, status=OfferStatus.PAUSED
        ),
        # Y's: one public, one private that only B runs.
        "y_public": offer("y_public", adv_y, Vis.PUBLIC, currency="EUR"),
        "y_private_b": offer("y_private_b", adv_y, Vis.PRIVATE),
    }
    for key, status in (
        ("x_approved", AccessStatus.APPROVED),
        ("x_private_approved", AccessStatus.APPROVED),
        ("x_pending", AccessStatus.PENDING),
        ("x_public_rejected", AccessStatus.REJECTED),
        ("x_approved_paused", AccessStatus.APPROVED),
    ):
        factories.OfferAccessFactory(offer=offers[key], affiliate=aff_a, status=status)
    factories.OfferAccessFactory(offer=offers["y_private_b"], affiliate=aff_b)
    factories.OfferAccessFactory(
        offer=offers["x_private"], affiliate=aff_b, status=AccessStatus.PENDING
    )
    goals = {
        key: factories.GoalFactory(
            offer=o, code="lead", payout=Decimal("2.50"), revenue=Decimal("4.00")
        )
        for key, o in offers.items()
    }

    def click(key: str, offer_key: str, aff: Affiliate, **kw: object) -> Click:
        return factories.ClickFactory(
            click_id=f"c-{key}", offer=offers[offer_key], affiliate=aff, created_at=DAY, **kw
        )

    clicks = {
        "a1": click("a1", "x_approved", aff_a, sub1="a-sub1", sub2="a-sub2", source_id="a-src"),
        "a2": click("a2", "y_public", aff_a),
        "a3": click("a3", "x_approved", aff_a, is_unique=False),
        "b1": click("b1", "y_private_b", aff_b, sub1="b-sub1"),
        "b2": click("b2", "x_public", aff_b),
    }

    def conversion(key: str, click_key: str, status: str, payout: str, revenue: str) -> Conversion:
        c = clicks[click_key]
        return factories.ConversionFactory(
            click=c,
            goal=goals[next(k for k, o in offers.items() if o.pk == c.offer_id)],
            order_id=f"order-{key}",
            status=status,
            currency=c.offer.currency,
            payout=Decimal(payout),
            revenue=Decimal(revenue),
            quality_score=80,
            quality_reasons=["fast_conversion"],
            created_at=DAY,
            adv1=f"adv-{key}",
        )

    conversions = {
        "a1": conversion("a1", "a1", ConversionStatus.APPROVED, "2.50", "4.00"),
        "a2": conversion("a2", "a2", ConversionStatus.PENDING, "1.00", "1.50"),
        "b1": conversion("b1", "b1", ConversionStatus.APPROVED, "7.00", "9.00"),
        "b2": conversion("b2", "b2", ConversionStatus.REJECTED, "3.00", "5.00"),
    }
    postbacks = {
        "a": factories.AffiliatePostbackFactory(
            affiliate=aff_a, url="https://a.example.org/pb?c={click_id}"
        ),
        "b": factories.AffiliatePostbackFactory(
            affiliate=aff_b, url="https://b.example.org/pb?c={click_id}"
        ),
    }
    ledger = {
        "a": LedgerEntry.objects.create(
            affiliate=aff_a,
            kind=EntryKind.COMMISSION,
            amount=Decimal("2.50"),
            currency="USD",
            conversion=conversions["a1"],
        ),
        "a_adj": LedgerEntry.objects.create(
            affiliate=aff_a, kind=EntryKind.ADJUSTMENT, amount=Decimal("-0.50"), currency="USD"
        ),
        "b": LedgerEntry.objects.create(
            affiliate=aff_b,
            kind=EntryKind.COMMISSION,
            amount=Decimal("7.00"),
            currency="USD",
            conversion=conversions["b1"],
        ),
        "b_eur": LedgerEntry.objects.create(
            affiliate=aff_b, kind=EntryKind.ADJUSTMENT, amount=Decimal("11.00"), currency="EUR"
        ),
    }
    return World(
        adv_x=adv_x,
        adv_y=adv_y,
        aff_a=aff_a,
        aff_b=aff_b,
        offers=offers,
        goals=goals,
        clicks=clicks,
        conversions=conversions,
        postbacks=postbacks,
        ledger=ledger,
        client_a=client_for(factories.UserFactory(affiliate=aff_a)),
        client_b=client_for(factories.UserFactory(affiliate=aff_b)),
        client_x=client_for(factories.UserFactory(advertiser=adv_x, is_staff=True)),
        client_y=client_for(factories.UserFactory(advertiser=adv_y, is_staff=True)),
        client_staff=client_for(factories.UserFactory(is_staff=True)),
    )
