"""conversion_record / postback_process called directly: pricing, quality holds, idempotency."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.commissions.models import AccrualQueue, LedgerEntry
from apps.common.redis import redis_client
from apps.conversions import services
from apps.conversions.models import Conversion, InboundPostbackLog
from apps.offers.models import ConversionStatus, PayoutType
from apps.quality.services import Reason
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN
US_HOME_IP = "73.1.2.3"  # a US residential ISP (Comcast): a country, and no data-centre flag


def _params(click, **extra: str) -> dict[str, str]:
    return services.postback_params_parse({"click_id": click.click_id, "token": TOKEN, **extra})


def _record(click, **extra: str) -> tuple[Conversion, bool]:
    return services.conversion_record(
        params=_params(click, **extra), request_ip="127.0.0.1", now=timezone.now()
    )


# --- money ----------------------------------------------------------------------------------------


@pytest.fixture
def percent_goal(goal):
    goal.payout_type = PayoutType.PERCENT
    goal.revenue_type = PayoutType.PERCENT
    goal.payout = Decimal("10")
    goal.revenue = Decimal("12.5")
    goal.save()
    return goal


def test_fixed_payout_is_exact_and_decimal(click, goal):
    goal.payout = Decimal("3.3333")  # a rate with 4 places is rounded once, when stored
    goal.revenue = Decimal("7.125")
    goal.save()
    conversion, created = _record(click, amount="999.99")
    conversion.refresh_from_db()

    assert created is True
    assert (conversion.payout, conversion.revenue) == (Decimal("3.33"), Decimal("7.13"))
    assert conversion.sale_amount == Decimal("999.99")
    for value in (conversion.payout, conversion.revenue, conversion.sale_amount):
        assert type(value) is Decimal


@pytest.mark.parametrize(
    ("amount", "payout", "revenue"),
    [
        ("100.50", "10.05", "12.56"),  # 12.5625 -> 12.56
        ("1.25", "0.13", "0.16"),  # 0.125 -> 0.13 (half-up), 0.15625 -> 0.16
        ("0.04", "0.00", "0.01"),  # 0.004 -> 0.00, 0.005 -> 0.01
        ("0", "0.00", "0.00"),
        ("1000000000", "100000000.00", "125000000.00"),
    ],
)
def test_percent_payout_and_revenue_round_half_up(click, percent_goal, amount, payout, revenue):
    conversion, _ = _record(click, amount=amount)
    conversion.refresh_from_db()

    assert str(conversion.payout) == payout
    assert str(conversion.revenue) == revenue
    assert type(conversion.payout) is Decimal


def test_jpy_offer_rounds_to_whole_yen(click, percent_goal):
    offer = click.offer
    offer.currency = "JPY"
    offer.save()

    conversion, _ = _record(click, amount="10055")  # 10% = 1005.5, 12.5% = 1256.875
    conversion.refresh_from_db()

    assert conversion.currency == "JPY"
    assert (conversion.payout, conversion.revenue) == (Decimal("1006"), Decimal("1257"))
    assert conversion.payout == conversion.payout.to_integral_value()


def test_jpy_fixed_payout_rounds_to_whole_yen(click, goal):
    offer = click.offer
    offer.currency = "JPY"
    offer.save()
    conversion, _ = _record(click)  # goal pays 2.50 and charges 4.00
    assert (conversion.payout, conversion.revenue) == (Decimal("3"), Decimal("4"))


# --- idempotency ----------------------------------------------------------------------------------


def test_recording_twice_returns_the_first_conversion(click):
    first, first_created = _record(click, order_id="O-1")
    second, second_created = _record(click, order_id="O-1")

    assert (first_created, second_created) == (True, False)
    assert second.pk == first.pk
    assert Conversion.objects.count() == 1


def test_duplicate_of_a_conversion_made_earlier_keeps_its_values(click, goal):
    _record(click, order_id="O-1")
    goal.payout = Decimal("99")
    goal.save()
    again, created = _record(click, order_id="O-1", status="rejected")
    assert created is False
    assert (again.payout, again.status) == (Decimal("2.50"), "approved")


def test_postback_process_logs_each_call(click):
    now = timezone.now()
    raw = {"click_id": click.click_id, "token": TOKEN, "order_id": "O-9"}
    decisions = [
        services.postback_process(
            raw=raw, request_ip="192.0.2.10", method="POST", path="/postback", now=now
        )
        for _ in range(2)
    ]
    conversion = Conversion.objects.get()
    assert [d.as_json() for d in decisions] == [
        {
            "result": "accepted",
            "conversion_id": conversion.pk,
            "status": "approved",
            "reason": None,
        },
        {
            "result": "duplicate",
            "conversion_id": conversion.pk,
            "status": "approved",
            "reason": None,
        },
    ]
    assert [d.http_status for d in decisions] == [200, 200]
    assert list(
        InboundPostbackLog.objects.order_by("id").values_list("result", "ip", "method")
    ) == [("accepted", "192.0.2.10", "POST"), ("duplicate", "192.0.2.10", "POST")]


def test_a_new_conversion_is_queued_for_accrual_in_its_own_transaction(
    click, django_capture_on_commit_callbacks
):
    """The ledger hears of the conversion through the accrual queue the database fills in the
    same transaction (a trigger), not through a message; the affiliate has no postback URL, so
    nothing goes on the postbacks queue. Nothing is done in-line and a duplicate queues nothing."""
    redis = redis_client()
    with django_capture_on_commit_callbacks(execute=True):
        conversion, created = _record(click, order_id="O-1")
    assert created
    assert (redis.llen("postbacks"), redis.llen("commissions")) == (0, 0)
    assert list(AccrualQueue.objects.values_list("conversion_id", flat=True)) == [conversion.pk]
    assert LedgerEntry.objects.count() == 0  # the beat job does that, not the request

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _record(click, order_id="O-1")
    assert callbacks == []
    assert AccrualQueue.objects.count() == 1


# --- quality on the way in ------------------------------------------------------------------------


def test_bot_click_turns_approved_into_pending(click):
    click.is_bot = True
    click.save()
    conversion, _ = _record(click)
    assert conversion.status == ConversionStatus.PENDING
    assert (conversion.quality_score, conversion.quality_reasons) == (40, [Reason.BOT_USER_AGENT])


def test_score_at_the_threshold_stays_approved(click):
    offer = click.offer
    offer.quality_threshold = 75
    offer.save()
    conversion, _ = _record(click, ip=US_HOME_IP)  # GB click, US shopper: 75
    assert (conversion.status, conversion.quality_score) == ("approved", 75)
    assert (conversion.ip, conversion.country) == (US_HOME_IP, "US")
    assert conversion.quality_reasons == [Reason.COUNTRY_MISMATCH]


def test_score_below_a_stricter_threshold_is_held(click):
    offer = click.offer
    offer.quality_threshold = 76
    offer.save()
    conversion, _ = _record(click, ip=US_HOME_IP)
    assert (conversion.status, conversion.quality_score) == ("pending", 75)


def test_threshold_zero_never_holds(click):
    offer = click.offer
    offer.quality_threshold = 0
    offer.min_seconds_to_convert = 3600
    offer.save()
    click.is_bot = True
    click.save()
    conversion, _ = _record(click, ip=US_HOME_IP)
    assert (conversion.status, conversion.quality_score) == ("approved", 0)
    assert conversion.quality_reasons == [
        Reason.TOO_FAST,
        Reason.BOT_USER_AGENT,
        Reason.COUNTRY_MISMATCH,
    ]


def test_default_pending_goal_stays_pending(click, goal):
    goal.default_status = ConversionStatus.PENDING
    goal.save()
    conversion, _ = _record(click)
    assert (conversion.status, conversion.quality_score) == ("pending", 100)


def test_low_score_never_turns_rejected_into_pending(click):
    click.is_bot = True
    click.save()
    conversion, _ = _record(click, status="rejected")
    assert (conversion.status, conversion.quality_score) == ("rejected", 40)


def test_too_fast_through_the_postback(click):
    offer = click.offer
    offer.min_seconds_to_convert = 3600  # the click fixture is a minute old
    offer.save()
    conversion, _ = _record(click)
    assert (conversion.status, conversion.quality_score) == ("pending", 45)
    assert conversion.quality_reasons == [Reason.TOO_FAST]
    assert conversion.quality_evidence[Reason.TOO_FAST]["min_seconds"] == 3600.0


def test_second_conversion_from_the_same_ip_on_the_offer(click, goal):
    other_click = factories.ClickFactory(
        offer=goal.offer, ip=click.ip, created_at=timezone.now() - timedelta(minutes=5)
    )
    _record(click)
    conversion, _ = _record(other_click)
    assert (conversion.quality_score, conversion.quality_reasons) == (45, [Reason.REPEAT_IP])
    assert conversion.status == ConversionStatus.PENDING


@pytest.mark.parametrize("ip", ["not-an-ip", "999.1.1.1", "", "10.0.0.1"])
def test_postback_ip_that_is_not_a_public_ip_sets_no_country(click, ip):
    conversion, _ = _record(click, ip=ip)
    assert conversion.country == ""
    assert conversion.ip == (ip if ip == "10.0.0.1" else None)
    assert conversion.quality_reasons == []


def test_user_ip_alias(click):
    conversion, _ = _record(click, user_ip="2001:4860:4860::8888")
    assert conversion.ip == "2001:4860:4860::8888"
