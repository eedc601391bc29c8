"""Coupon-code attribution: a sale reported with a code (no click) goes to the code's affiliate."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from apps.conversions import services
from apps.conversions.models import Conversion, InboundPostbackLog
from apps.conversions.services import PostbackRejected
from apps.offers.models import CouponCode, CustomPayout
from apps.quality.services import Reason
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN
US_HOME_IP = "73.1.2.3"
TIMING_REASONS = {Reason.TOO_FAST, Reason.TOO_SLOW}


@pytest.fixture
def coupon(goal, affiliate):
    return CouponCode.objects.create(offer=goal.offer, affiliate=affiliate, code="  summer10 ")


def _record(**raw: str) -> tuple[Conversion, bool]:
    params = services.postback_params_parse({"token": TOKEN, **raw})
    return services.conversion_record(params=params, request_ip="127.0.0.1", now=timezone.now())


def _refused(code: str, http_status: int, **raw: str) -> None:
    with pytest.raises(PostbackRejected) as rejected:
        _record(**raw)
    assert (rejected.value.code, rejected.value.http_status) == (code, http_status)
    assert Conversion.objects.count() == 0


def test_code_is_stored_upper_case_and_stripped(coupon):
    coupon.refresh_from_db()
    assert coupon.code == "SUMMER10"


@pytest.mark.parametrize("sent", ["SUMMER10", "summer10", "Summer10", " sUmMeR10 "])
def test_coupon_attribution_is_case_insensitive(coupon, goal, affiliate, sent):
    conversion, created = _record(coupon_code=sent, order_id="ORD-1", amount="80.00")
    conversion.refresh_from_db()
    assert created is True
    assert (conversion.offer, conversion.affiliate, conversion.goal) == (
        goal.offer,
        affiliate,
        goal,
    )
    assert (conversion.method, conversion.coupon_code) == ("coupon", "SUMMER10")
    assert (conversion.order_id, conversion.sale_amount) == ("ORD-1", Decimal("80.00"))
    assert (conversion.payout, conversion.revenue) == (Decimal("2.50"), Decimal("4.00"))
    assert conversion.status == "approved"


@pytest.mark.parametrize("alias", ["coupon_code", "coupon", "promo_code"])
def test_coupon_aliases(coupon, alias):
    conversion, _ = _record(**{alias: "summer10", "order_id": "ORD-1"})
    assert conversion.coupon_code == "SUMMER10"


def test_coupon_conversion_has_no_click_fields(coupon):
    conversion, _ = _record(coupon_code="summer10", order_id="ORD-1")
    conversion.refresh_from_db()
    assert conversion.click_id == ""
    assert conversion.click_created_at is None
    assert conversion.click_ip is None
    assert conversion.click_country == ""
    assert conversion.click_is_bot is False
    assert [getattr(conversion, f"sub{n}") for n in range(1, 6)] == [""] * 5
    assert (conversion.source_id, conversion.aff_click_id, conversion.creative_id) == ("", "", "")
    assert conversion.click is None
    assert conversion.goal_once is True


def test_quality_scoring_has_no_timing_reasons(coupon, goal):
    """No click, so no click-to-conversion time: neither too fast nor too slow can fire, however
    strict the offer is."""
    offer = goal.offer
    offer.min_seconds_to_convert = 3600
    offer.save()
    conversion, _ = _record(coupon_code="summer10", order_id="ORD-1", ip=US_HOME_IP)
    conversion.refresh_from_db()
    assert (conversion.quality_score, conversion.quality_reasons) == (100, [])
    assert not TIMING_REASONS & set(conversion.quality_evidence)
    assert (conversion.ip, conversion.country) == (US_HOME_IP, "US")
    assert conversion.quality_rule_version.startswith("q2:")
    assert conversion.status == "approved"


def test_quality_scoring_without_any_ip(coupon):
    conversion, _ = _record(coupon_code="summer10", order_id="ORD-1")
    assert (conversion.quality_score, conversion.quality_reasons) == (100, [])
    assert (conversion.ip, conversion.country) == (None, "")


def test_coupon_conversion_gets_the_affiliates_custom_payout(coupon, goal, affiliate):
    """No click, so no click country: only a country-less custom payout can apply."""
    CustomPayout.objects.create(
        offer=goal.offer, affiliate=affiliate, country="GB", payout=Decimal("9.00")
    )
    conversion, _ = _record(coupon_code="summer10", order_id="ORD-1")
    assert conversion.payout == Decimal("2.50")
    CustomPayout.objects.create(
        offer=goal.offer, affiliate=affiliate, goal=goal, payout=Decimal("3.75")
    )
    conversion, _ = _record(coupon_code="summer10", order_id="ORD-2")
    assert (conversion.payout, conversion.revenue) == (Decimal("3.75"), Decimal("4.00"))


def test_unknown_coupon(coupon):
    _refused("unknown_coupon", 404, coupon_code="WINTER10", order_id="ORD-1")


def test_inactive_coupon_is_unknown(coupon):
    coupon.is_active = False
    coupon.save()
    _refused("unknown_coupon", 404, coupon_code="summer10", order_id="ORD-1")


def test_overlong_coupon_is_unknown(coupon):
    _refused("unknown_coupon", 404, coupon_code="S" * 65, order_id="ORD-1")


@pytest.fixture
def second_offer(goal):
    """Another offer of the same advertiser, with a default goal and the same coupon code for
    another affiliate."""
    offer = factories.OfferFactory(advertiser=goal.offer.advertiser)
    factories.GoalFactory(offer=offer, code="sale", payout=Decimal("9.00"))
    other_affiliate = factories.AffiliateFactory()
    CouponCode.objects.create(offer=offer, affiliate=other_affiliate, code="SUMMER10")
    return offer


def test_same_code_on_two_offers_is_ambiguous(coupon, second_offer):
    _refused("ambiguous_coupon", 409, coupon_code="summer10", order_id="ORD-1")


def test_offer_id_picks_the_coupon(coupon, second_offer, affiliate, goal):
    other_coupon = CouponCode.objects.get(offer=second_offer)
    theirs, _ = _record(coupon_code="summer10", offer_id=str(second_offer.pk), order_id="ORD-1")
    ours, _ = _record(coupon_code="summer10", oid=str(goal.offer.pk), order_id="ORD-2")
    assert (theirs.offer, theirs.affiliate_id, theirs.payout) == (
        second_offer,
        other_coupon.affiliate_id,
        Decimal("9.00"),
    )
    assert (ours.offer, ours.affiliate, ours.payout) == (goal.offer, affiliate, Decimal("2.50"))


def test_an_inactive_twin_does_not_make_it_ambiguous(coupon, second_offer, affiliate):
    CouponCode.objects.filter(offer=second_offer).update(is_active=False)
    conversion, created = _record(coupon_code="summer10", order_id="ORD-1")
    assert (created, conversion.affiliate) == (True, affiliate)


@pytest.mark.parametrize("offer_id", ["abc", "-1", "1" * 13, "987654321"])
def test_bad_or_unknown_offer_id_is_unknown_coupon(coupon, offer_id):
    _refused("unknown_coupon", 404, coupon_code="summer10", offer_id=offer_id, order_id="ORD-1")


def test_offer_id_of_an_offer_without_that_code(coupon, goal):
    other = factories.OfferFactory(advertiser=goal.offer.advertiser)
    _refused("unknown_coupon", 404, coupon_code="summer10", offer_id=str(other.pk), order_id="X")


def test_order_id_is_required(coupon):
    _refused("order_id_required", 400, coupon_code="summer10")


def test_retry_is_a_duplicate(coupon):
    first, c1 = _record(coupon_code="summer10", order_id="ORD-1", amount="80")
    again, c2 = _record(coupon_code="SUMMER10", order_id="ORD-1", amount="80.00")
    assert (c1, c2, again.pk) == (True, False, first.pk)
    assert Conversion.objects.count() == 1


def test_retry_with_another_amount_is_a_conflict(coupon):
    _record(coupon_code="summer10", order_id="ORD-1", amount="80")
    with pytest.raises(PostbackRejected) as rejected:
        _record(coupon_code="summer10", order_id="ORD-1", amount="81")
    assert (rejected.value.code, rejected.value.http_status) == ("order_conflict", 409)
    assert Conversion.objects.get().sale_amount == Decimal("80.0000")


def test_each_order_is_its_own_conversion_even_on_a_not_repeatable_goal(coupon, goal):
    """Without a click there is no "once per click": every order is another shopper."""
    assert goal.is_repeatable is False
    _record(coupon_code="summer10", order_id="ORD-1")
    _, created = _record(coupon_code="summer10", order_id="ORD-2")
    assert created is True
    assert sorted(Conversion.objects.values_list("order_id", flat=True)) == ["ORD-1", "ORD-2"]


def test_a_click_id_wins_over_a_coupon(coupon, click):
    conversion, _ = _record(click_id=click.click_id, coupon_code="summer10", order_id="ORD-1")
    assert (conversion.method, conversion.coupon_code, conversion.click_id) == (
        "postback",
        "",
        click.click_id,
    )


def test_coupon_postback_needs_the_advertisers_token(coupon):
    _refused("bad_token", 403, coupon_code="summer10", order_id="ORD-1", token="wrong")


def test_coupon_postback_respects_the_ip_allowlist(coupon, goal):
    advertiser = goal.offer.advertiser
    advertiser.ip_allowlist = ["203.0.113.0/24"]
    advertiser.save()
    _refused("ip_not_allowed", 403, coupon_code="summer10", order_id="ORD-1")


# --- over HTTP ------------------------------------------------------------------------------------


def test_coupon_postback_over_http(client, coupon, affiliate):
    response = client.get(
        "/postback", {"coupon_code": "Summer10", "order_id": "ORD-1", "token": TOKEN}
    )
    conversion = Conversion.objects.get()
    assert response.status_code == 200
    assert response.json() == {
        "result": "accepted",
        "conversion_id": conversion.pk,
        "status": "approved",
        "reason": None,
    }
    assert (conversion.affiliate, conversion.method) == (affiliate, "coupon")
    log = InboundPostbackLog.objects.get()
    assert (log.result, log.click_id, log.order_id, log.conversion) == (
        "accepted",
        "",
        "ORD-1",
        conversion,
    )
    assert log.advertiser == coupon.offer.advertiser

    again = client.get(
        "/postback", {"coupon_code": "SUMMER10", "order_id": "ORD-1", "token": TOKEN}
    )
    assert again.json()["result"] == "duplicate"
    assert again.json()["conversion_id"] == conversion.pk


@pytest.mark.parametrize(
    ("params", "http_status", "reason"),
    [
        ({"coupon_code": "nope", "order_id": "1"}, 404, "unknown_coupon"),
        ({"coupon_code": "summer10"}, 400, "order_id_required"),
        ({}, 400, "missing_click_id"),
    ],
)
def test_coupon_rejections_over_http(client, coupon, params, http_status, reason):
    response = client.get("/postback", {**params, "token": TOKEN})
    assert response.status_code == http_status
    assert response.json() == {
        "result": "rejected",
        "conversion_id": None,
        "status": None,
        "reason": reason,
    }
    assert Conversion.objects.count() == 0
    assert InboundPostbackLog.objects.get().reason == reason


# --- quality across coupon conversions ----------------------------------------------------------


def test_same_shopper_ip_twice_by_coupon_is_a_repeat_ip(coupon):
    _record(coupon_code="summer10", order_id="ORD-1", ip=US_HOME_IP)
    second, _ = _record(coupon_code="summer10", order_id="ORD-2", ip=US_HOME_IP)
    assert Reason.REPEAT_IP in second.quality_reasons
    assert second.status == "pending"


def test_coupon_conversion_after_a_click_conversion_from_the_same_ip_is_a_repeat_ip(coupon, click):
    _record(click_id=click.click_id, ip=US_HOME_IP)
    second, _ = _record(coupon_code="summer10", order_id="ORD-2", ip=US_HOME_IP)
    assert (second.quality_score, second.quality_reasons) == (45, [Reason.REPEAT_IP])
    assert second.status == "pending"
