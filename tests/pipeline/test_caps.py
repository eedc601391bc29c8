"""Caps in real time: click caps send the click down the fallback chain at once, conversion caps
record the conversion over cap and unpaid; counters in Redis, reconciled with PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from apps.commissions.models import LedgerEntry
from apps.commissions.services import commission_accrue
from apps.common.redis import redis_client
from apps.conversions.models import Conversion
from apps.offers.caps import cap_counter_key, cap_period_label, cap_period_start
from apps.offers.models import CapMetric, CapPeriod, OfferCap, OfferVisibility
from apps.offers.services import caps_reconcile
from apps.tracking.models import Click
from tests import factories
from tests.pipeline.conftest import OFFER_FALLBACK, US_IP, click_url, drain

pytestmark = pytest.mark.django_db


def _cap(offer, **kwargs) -> OfferCap:
    kwargs.setdefault("metric", CapMetric.CLICKS)
    kwargs.setdefault("period", CapPeriod.DAY)
    return OfferCap.objects.create(offer=offer, **kwargs)


def _cap_key(cap: OfferCap, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return cap_counter_key(cap_id=cap.pk, period=cap.period, now=now, timezone=cap.offer.timezone)[
        0
    ]


def _outcomes(responses) -> list[str]:
    """'served' or the fallback reason, per response."""
    return [r.headers.get("X-Fallback-Reason", "served") for r in responses]


# --- click caps ----------------------------------------------------------------------------------


def test_the_click_after_the_cap_goes_down_the_chain_at_once(browser, offer, affiliate):
    cap = _cap(offer, limit=3)
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    responses = [browser.get(url) for _ in range(5)]
    # No drain in between: the cap is counted in Redis as the clicks happen.
    assert _outcomes(responses) == ["served"] * 3 + ["click_cap_reached"] * 2
    assert [r["Location"] for r in responses[3:]] == [OFFER_FALLBACK, OFFER_FALLBACK]
    assert redis_client().get(_cap_key(cap)) == b"3"  # refused clicks are not counted
    assert 0 < redis_client().ttl(_cap_key(cap)) <= 2 * 86400

    drain()
    assert list(Click.objects.order_by("id").values_list("fallback_reason", "is_unique")) == [
        ("", True),
        ("", False),
        ("", False),
        ("click_cap_reached", False),
        ("click_cap_reached", False),
    ]


def test_a_capped_click_is_served_by_the_fallback_offer(browser, advertiser, offer, affiliate):
    backup = factories.OfferFactory(
        advertiser=advertiser,
        visibility=OfferVisibility.PUBLIC,
        destination_url="https://backup.example.com/?cid={click_id}",
    )
    offer.fallback_offer = backup
    offer.save()
    _cap(offer, limit=1)
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    first, second = browser.get(url), browser.get(url)
    assert second["Location"] == (
        f"https://backup.example.com/?cid={second.cookies['ocpa_cid'].value}"
    )
    drain()
    assert list(
        Click.objects.order_by("id").values_list("click_id", "offer_id", "origin_offer_id")
    ) == [
        (first.cookies["ocpa_cid"].value, offer.pk, None),
        (second.cookies["ocpa_cid"].value, backup.pk, offer.pk),
    ]


def test_an_affiliate_cap_limits_that_affiliate_alone(client, offer, affiliate):
    other = factories.AffiliateFactory()
    _cap(offer, affiliate=affiliate, limit=1)
    mine = [client.get(click_url(offer_id=offer.pk, aff_id=affiliate.pk)) for _ in range(2)]
    theirs = [client.get(click_url(offer_id=offer.pk, aff_id=other.pk)) for _ in range(3)]
    assert _outcomes(mine) == ["served", "click_cap_reached"]
    assert _outcomes(theirs) == ["served", "served", "served"]


def test_an_offer_cap_and_an_affiliate_cap_both_hold(client, offer, affiliate):
    other = factories.AffiliateFactory()
    _cap(offer, limit=3)
    _cap(offer, affiliate=affiliate, limit=1)
    responses = [
        client.get(click_url(offer_id=offer.pk, aff_id=aff.pk))
        for aff in (affiliate, affiliate, other, other, other)
    ]
    assert _outcomes(responses) == [
        "served",
        "click_cap_reached",  # the affiliate's own cap (not counted against the offer's)
        "served",
        "served",
        "click_cap_reached",  # the offer's cap: 3 served in all
    ]


def test_a_total_cap_never_expires(browser, offer, affiliate):
    cap = _cap(offer, period=CapPeriod.TOTAL, limit=1)
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    assert _outcomes([browser.get(url), browser.get(url)]) == ["served", "click_cap_reached"]
    assert _cap_key(cap) == f"cap:{cap.pk}:total"
    assert redis_client().ttl(_cap_key(cap)) == -1


def test_the_day_ends_at_midnight_in_the_offers_timezone(browser, offer, affiliate):
    offer.timezone = "America/New_York"  # UTC-5 in March
    offer.save()
    cap = _cap(offer, limit=1)
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    responses = []
    for moment in ("2025-03-04T04:59:00Z", "2025-03-04T04:59:30Z", "2025-03-04T05:00:30Z"):
        with time_machine.travel(moment, tick=False):
            responses.append(browser.get(url))
    # In UTC all three fall on 4 March; in New York the third is the first click of a new day.
    assert _outcomes(responses) == ["served", "click_cap_reached", "served"]
    assert redis_client().get(f"cap:{cap.pk}:20250303") == b"1"
    assert redis_client().get(f"cap:{cap.pk}:20250304") == b"1"


@pytest.mark.parametrize(
    ("period", "moment", "label", "start"),
    [
        (CapPeriod.DAY, "2025-03-04T04:59:59Z", "20250303", "2025-03-03T05:00:00Z"),
        (CapPeriod.DAY, "2025-03-04T05:00:00Z", "20250304", "2025-03-04T05:00:00Z"),
        # Sunday 23:30 and Monday 00:30 in New York: ISO weeks 9 and 10.
        (CapPeriod.WEEK, "2025-03-03T04:30:00Z", "2025w09", "2025-02-24T05:00:00Z"),
        (CapPeriod.WEEK, "2025-03-03T05:30:00Z", "2025w10", "2025-03-03T05:00:00Z"),
        (CapPeriod.MONTH, "2025-03-01T04:59:00Z", "202502", "2025-02-01T05:00:00Z"),
        # Across the DST change (9 March): the month began at midnight EST.
        (CapPeriod.MONTH, "2025-03-20T12:00:00Z", "202503", "2025-03-01T05:00:00Z"),
        (CapPeriod.TOTAL, "2025-03-20T12:00:00Z", "total", None),
    ],
)
def test_cap_periods_in_the_offer_timezone(period, moment, label, start):
    now = datetime.fromisoformat(moment)
    tz = "America/New_York"
    assert cap_period_label(period=period, now=now, timezone=tz) == label
    began = cap_period_start(period=period, now=now, timezone=tz)
    assert began == (datetime.fromisoformat(start) if start else None)


# --- conversion caps -----------------------------------------------------------------------------


_SHOPPERS = itertools.count(100)


def _convert(browser, offer, affiliate, *, goal: str = "", order_id: str):
    """A click from a new shopper (one IP each, so quality checks pass) and its postback."""
    shopper_ip = f"81.2.69.{next(_SHOPPERS)}"
    click = browser.get(click_url(offer_id=offer.pk, aff_id=affiliate.pk), REMOTE_ADDR=shopper_ip)
    params = {
        "click_id": click.cookies["ocpa_cid"].value,
        "token": factories.ADVERTISER_TOKEN,
        "order_id": order_id,
    }
    if goal:
        params["goal"] = goal
    response = browser.get("/postback", params)
    assert (response.status_code, response.json()["result"]) == (200, "accepted")
    return Conversion.objects.get(pk=response.json()["conversion_id"])


def test_conversions_over_the_cap_are_recorded_but_not_paid(browser, offer, affiliate):
    factories.GoalFactory(offer=offer, code="lead", payout=Decimal("2.50"), is_default=True)
    _cap(offer, metric=CapMetric.CONVERSIONS, limit=2)
    conversions = [_convert(browser, offer, affiliate, order_id=f"o{i}") for i in range(4)]
    assert [c.is_over_cap for c in conversions] == [False, False, True, True]
    assert [(c.status, c.quality_reasons) for c in conversions] == [("approved", [])] * 4

    assert commission_accrue() == 2
    assert list(
        LedgerEntry.objects.order_by("conversion_id").values_list("conversion_id", "amount")
    ) == [(conversions[0].pk, Decimal("2.50")), (conversions[1].pk, Decimal("2.50"))]
    assert commission_accrue() == 0


def test_a_goal_cap_counts_that_goal_alone(browser, offer, affiliate):
    lead = factories.GoalFactory(offer=offer, code="lead", is_default=True)
    factories.GoalFactory(offer=offer, code="sale", is_default=False)
    _cap(offer, metric=CapMetric.CONVERSIONS, goal=lead, limit=1)
    conversions = [
        _convert(browser, offer, affiliate, goal=goal, order_id=f"o{i}")
        for i, goal in enumerate(["lead", "sale", "lead", "sale"])
    ]
    assert [(c.goal.code, c.is_over_cap) for c in conversions] == [
        ("lead", False),
        ("sale", False),
        ("lead", True),
        ("sale", False),
    ]


def test_an_affiliate_conversion_cap(browser, offer, affiliate):
    factories.GoalFactory(offer=offer, code="lead", is_default=True)
    other = factories.AffiliateFactory()
    _cap(offer, metric=CapMetric.CONVERSIONS, affiliate=affiliate, limit=1)
    conversions = [
        _convert(browser, offer, aff, order_id=f"o{i}")
        for i, aff in enumerate([affiliate, other, affiliate, other])
    ]
    assert [c.is_over_cap for c in conversions] == [False, False, True, False]


# --- reconciliation ------------------------------------------------------------------------------


def test_reconcile_restores_a_lost_click_counter_from_postgresql(browser, offer, affiliate):
    cap = _cap(offer, limit=2)
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    assert _outcomes([browser.get(url) for _ in range(3)]) == [
        "served",
        "served",
        "click_cap_reached",
    ]
    drain()  # two billable rows and one unbilled
    redis_client().delete(_cap_key(cap))  # Redis restarted without its data

    assert caps_reconcile() == 1
    assert redis_client().get(_cap_key(cap)) == b"2"  # unbilled clicks are not counted
    assert 0 < redis_client().ttl(_cap_key(cap)) <= 2 * 86400
    assert _outcomes([browser.get(url)]) == ["click_cap_reached"]  # the cap holds again


def test_reconcile_never_lowers_a_counter(browser, offer, affiliate):
    cap = _cap(offer, limit=10)
    browser.get(click_url(offer_id=offer.pk, aff_id=affiliate.pk))
    drain()
    redis_client().set(_cap_key(cap), 5)  # clicks still in the buffer count in Redis only
    assert caps_reconcile() == 0
    assert redis_client().get(_cap_key(cap)) == b"5"


def test_reconcile_counts_the_current_period_in_the_offers_timezone(browser, offer, affiliate):
    offer.timezone = "America/New_York"
    offer.save()
    cap = _cap(offer, limit=10)
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk, sub1="x")
    for moment in ("2025-03-04T04:59:00Z", "2025-03-04T05:00:30Z", "2025-03-04T06:00:00Z"):
        with time_machine.travel(moment, tick=False):
            browser.get(url, REMOTE_ADDR=US_IP)
    drain()
    redis_client().flushdb()

    now = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
    assert caps_reconcile(now=now) == 1
    assert redis_client().get(_cap_key(cap, now)) == b"2"  # since midnight in New York
    assert redis_client().get(f"cap:{cap.pk}:20250304") == b"2"


def test_reconcile_restores_a_conversion_counter(browser, offer, affiliate):
    factories.GoalFactory(offer=offer, code="lead", is_default=True)
    cap = _cap(offer, metric=CapMetric.CONVERSIONS, limit=2)
    for i in range(3):
        _convert(browser, offer, affiliate, order_id=f"o{i}")
    redis_client().delete(_cap_key(cap))
    assert caps_reconcile() == 1
    assert redis_client().get(_cap_key(cap)) == b"3"  # over-cap conversions were counted too
    assert _convert(browser, offer, affiliate, order_id="o9").is_over_cap is True
