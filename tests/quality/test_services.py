"""quality_score: each signal alone, their sums, the clamp at 0, and the exact reason list."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.offers.models import ConversionStatus, Goal
from apps.quality.services import (
    DEFAULT_WEIGHTS,
    REPEAT_IP_WINDOW,
    QualityResult,
    Reason,
    quality_score,
)
from tests import factories

pytestmark = pytest.mark.django_db

IP = "81.2.69.160"


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def offer(db):
    return factories.OfferFactory(min_seconds_to_convert=10)


@pytest.fixture
def click(offer, now):
    """A GB browser click a minute ago: nothing suspicious on its own."""
    return factories.ClickFactory(
        offer=offer, ip=IP, country="GB", is_bot=False, created_at=now - timedelta(minutes=1)
    )


def _score(click, now, *, conversion_ip=None, conversion_country="") -> QualityResult:
    return quality_score(
        click=click,
        offer=click.offer,
        conversion_ip=conversion_ip,
        conversion_country=conversion_country,
        now=now,
    )


def _earlier_conversion(offer, *, created_at, ip=None, click_ip="192.0.2.99"):
    """A conversion on another click of the offer."""
    goal = Goal.objects.filter(offer=offer).first() or factories.GoalFactory(offer=offer)
    other_click = factories.ClickFactory(offer=offer, ip=click_ip, created_at=created_at)
    return factories.ConversionFactory(click=other_click, goal=goal, ip=ip, created_at=created_at)


def test_weights_are_the_published_ones():
    assert DEFAULT_WEIGHTS == {
        "click_to_conversion_too_fast": 55,
        "repeat_ip_on_offer": 55,
        "bot_user_agent": 60,
        "country_mismatch": 25,
        "click_to_conversion_too_slow": 30,
        "repeat_ip_on_affiliate": 25,
        "datacenter_ip": 55,
        "country_not_targeted": 40,
        "non_browser_click": 55,
        "same_device_across_sub_ids": 55,
        "email_invalid": 55,
        "email_disposable": 55,
        "phone_invalid": 55,
        "email_seen_on_offer": 55,
        "phone_seen_on_offer": 55,
        "conversion_rate_above_norm": 35,
        "conversion_times_bunched": 55,
        "conversion_times_spread_flat": 55,
        "volume_spike": 20,
        "ip_cluster_on_offer": 55,
    }


def test_nothing_suspicious_scores_100(click, now):
    assert _score(click, now, conversion_ip="81.2.69.161", conversion_country="GB") == (
        QualityResult(score=100, reasons=[])
    )


def test_too_fast(click, now):
    assert _score(click, click.created_at + timedelta(seconds=9.999)) == QualityResult(
        45, [Reason.TOO_FAST]
    )


def test_exactly_the_minimum_is_not_too_fast(click):
    assert _score(click, click.created_at + timedelta(seconds=10)) == QualityResult(100, [])


def test_repeat_ip_from_the_click_ip(click, offer, now):
    _earlier_conversion(offer, created_at=now - timedelta(hours=23), click_ip=IP)
    assert _score(click, now) == QualityResult(45, [Reason.REPEAT_IP])


def test_repeat_ip_from_the_postback_ip(click, offer, now):
    _earlier_conversion(offer, created_at=now - timedelta(hours=1), ip="73.1.2.4")
    assert _score(click, now, conversion_ip="73.1.2.4") == QualityResult(45, [Reason.REPEAT_IP])
    # The click's own IP has no earlier conversion: without the postback IP nothing fires.
    assert _score(click, now) == QualityResult(100, [])


def test_repeat_ip_window_is_24_hours(click, offer, now):
    assert timedelta(hours=24) == REPEAT_IP_WINDOW
    _earlier_conversion(offer, created_at=now - timedelta(hours=24, seconds=1), click_ip=IP)
    assert _score(click, now) == QualityResult(100, [])
    _earlier_conversion(offer, created_at=now - timedelta(hours=24), click_ip=IP)
    assert _score(click, now) == QualityResult(45, [Reason.REPEAT_IP])


def test_repeat_ip_on_another_offer_does_not_count(click, now):
    _earlier_conversion(factories.OfferFactory(), created_at=now, click_ip=IP)
    assert _score(click, now) == QualityResult(100, [])


def test_another_goal_on_the_same_click_is_not_a_repeat(click, now):
    factories.ConversionFactory(click=click, created_at=now)
    assert _score(click, now) == QualityResult(100, [])


def test_a_rejected_earlier_conversion_still_counts(click, offer, now):
    earlier = _earlier_conversion(offer, created_at=now, click_ip=IP)
    earlier.status = ConversionStatus.REJECTED
    earlier.save()
    assert _score(click, now).reasons == [Reason.REPEAT_IP]


def test_no_ip_at_all_skips_the_repeat_check(offer, now):
    click = factories.ClickFactory(offer=offer, ip=None, created_at=now - timedelta(minutes=1))
    _earlier_conversion(offer, created_at=now, click_ip="192.0.2.1")
    assert _score(click, now) == QualityResult(100, [])


def test_bot_user_agent(click, now):
    click.is_bot = True
    assert _score(click, now) == QualityResult(40, [Reason.BOT_USER_AGENT])


def test_country_mismatch(click, now):
    assert _score(click, now, conversion_ip="73.1.2.3", conversion_country="US") == (
        QualityResult(75, [Reason.COUNTRY_MISMATCH])
    )


@pytest.mark.parametrize(("click_country", "conversion_country"), [("", "US"), ("GB", "")])
def test_unknown_country_is_no_mismatch(click, now, click_country, conversion_country):
    click.country = click_country
    assert _score(click, now, conversion_country=conversion_country) == QualityResult(100, [])


def test_bot_and_country_mismatch(click, now):
    click.is_bot = True
    assert _score(click, now, conversion_country="US") == QualityResult(
        15, [Reason.BOT_USER_AGENT, Reason.COUNTRY_MISMATCH]
    )


def test_too_fast_and_repeat_ip(click, offer, now):
    _earlier_conversion(offer, created_at=now, click_ip=IP)
    assert _score(click, click.created_at + timedelta(seconds=1)) == QualityResult(
        0, [Reason.TOO_FAST, Reason.REPEAT_IP]
    )


def test_too_fast_and_bot_is_exactly_zero(click):
    click.is_bot = True
    assert _score(click, click.created_at) == QualityResult(
        0, [Reason.TOO_FAST, Reason.BOT_USER_AGENT]
    )


def test_everything_clamps_at_zero_with_all_reasons_in_order(click, offer, now):
    _earlier_conversion(offer, created_at=now, click_ip=IP)
    click.is_bot = True
    result = _score(click, click.created_at, conversion_country="US")
    assert result == QualityResult(
        0,
        [Reason.TOO_FAST, Reason.REPEAT_IP, Reason.BOT_USER_AGENT, Reason.COUNTRY_MISMATCH],
    )
