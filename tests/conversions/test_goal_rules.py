"""Goal rules (repeatable, requires_goal), pricing (fixed / percent / both, rounding), custom
payouts and their precedence, and a not-repeatable goal under concurrent postbacks."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.conversions import services
from apps.conversions.models import Conversion, InboundPostbackLog
from apps.conversions.services import PostbackRejected
from apps.offers.models import ConversionStatus, CustomPayout, PayoutType
from tests import factories

TOKEN = factories.ADVERTISER_TOKEN

pytestmark = pytest.mark.django_db


def _record(click, **extra: str) -> tuple[Conversion, bool]:
    params = services.postback_params_parse({"click_id": click.click_id, "token": TOKEN, **extra})
    return services.conversion_record(params=params, request_ip="127.0.0.1", now=timezone.now())


def _refused(click, code: str, http_status: int, **extra: str) -> None:
    before = Conversion.objects.count()
    with pytest.raises(PostbackRejected) as rejected:
        _record(click, **extra)
    assert (rejected.value.code, rejected.value.http_status) == (code, http_status)
    assert Conversion.objects.count() == before


# --- repeatable or once ---------------------------------------------------------------------------


def test_not_repeatable_goal_converts_once_per_click(click, goal):
    assert goal.is_repeatable is False
    first, created = _record(click, order_id="1")
    assert created is True
    _refused(click, "goal_already_converted", 409, order_id="2")
    _refused(click, "goal_already_converted", 409)  # no order id is another order too
    assert list(Conversion.objects.values_list("pk", "order_id", "goal_once")) == [
        (first.pk, "1", True)
    ]


@pytest.mark.parametrize("status", ["rejected", "reversed", "pending"])
def test_not_repeatable_goal_stays_converted_whatever_the_first_became(click, status):
    first, _ = _record(click, order_id="1")
    Conversion.objects.filter(pk=first.pk).update(status=status)
    _refused(click, "goal_already_converted", 409, order_id="2")


def test_not_repeatable_goal_retry_of_the_same_order_is_a_duplicate(click):
    first, _ = _record(click, order_id="1")
    again, created = _record(click, order_id="1")
    assert (again.pk, created) == (first.pk, False)


def test_not_repeatable_goal_on_another_click_converts(click, goal):
    other = factories.ClickFactory(offer=goal.offer, affiliate=click.affiliate, ip="81.2.69.161")
    _record(click, order_id="1")
    _, created = _record(other, order_id="2")
    assert created is True
    assert Conversion.objects.count() == 2


def test_repeatable_goal_converts_once_per_order(click, goal):
    goal.is_repeatable = True
    goal.save()
    _, c1 = _record(click, order_id="1")
    second, c2 = _record(click, order_id="2")
    _, c3 = _record(click, order_id="3")
    again, c4 = _record(click, order_id="2")
    assert (c1, c2, c3, c4) == (True, True, True, False)
    assert again.pk == second.pk
    assert sorted(Conversion.objects.values_list("order_id", "goal_once")) == [
        ("1", False),
        ("2", False),
        ("3", False),
    ]


def test_repeatable_goal_without_order_id_is_one_conversion(click, goal):
    goal.is_repeatable = True
    goal.save()
    first, c1 = _record(click)
    second, c2 = _record(click)
    assert (c1, c2, second.pk) == (True, False, first.pk)


def test_goals_are_counted_apart(click, goal):
    factories.GoalFactory(offer=goal.offer, code="sale", is_default=False)
    _record(click, order_id="1")
    _, created = _record(click, order_id="1", goal="sale")
    assert created is True
    _refused(click, "goal_already_converted", 409, order_id="2", goal="sale")
    assert sorted(Conversion.objects.values_list("goal__code", "order_id")) == [
        ("lead", "1"),
        ("sale", "1"),
    ]


# --- requires_goal --------------------------------------------------------------------------------


@pytest.fixture
def sale(goal):
    return factories.GoalFactory(
        offer=goal.offer,
        code="sale",
        is_default=False,
        requires_goal=goal,
        payout=Decimal("12.00"),
        revenue=Decimal("20.00"),
    )


def test_required_goal_missing(click, sale):
    _refused(click, "required_goal_missing", 409, goal="sale", order_id="S-1")


@pytest.mark.parametrize(
    ("lead_status", "allowed"),
    [
        ("pending", True),
        ("approved", True),
        ("rejected", False),
    ],
)
def test_required_goal_by_its_status(click, sale, lead_status, allowed):
    lead, _ = _record(click, order_id="L-1", status=lead_status)
    assert lead.status == lead_status
    if allowed:
        conversion, created = _record(click, goal="sale", order_id="S-1")
        assert (created, conversion.goal, conversion.payout) == (True, sale, Decimal("12.00"))
    else:
        _refused(click, "required_goal_missing", 409, goal="sale", order_id="S-1")


def test_required_goal_reversed_is_missing(click, sale):
    lead, _ = _record(click, order_id="L-1")
    Conversion.objects.filter(pk=lead.pk).update(status=ConversionStatus.REVERSED)
    _refused(click, "required_goal_missing", 409, goal="sale", order_id="S-1")


def test_required_goal_on_another_click_does_not_count(click, sale, goal):
    other = factories.ClickFactory(offer=goal.offer, affiliate=click.affiliate)
    _record(other, order_id="L-1")
    _refused(click, "required_goal_missing", 409, goal="sale", order_id="S-1")


def test_required_goal_retry_of_an_accepted_sale_is_a_duplicate(click, sale):
    _record(click, order_id="L-1")
    first, _ = _record(click, goal="sale", order_id="S-1")
    again, created = _record(click, goal="sale", order_id="S-1")
    assert (again.pk, created) == (first.pk, False)


def test_required_goal_over_http(client, click, sale):
    response = client.get(
        "/postback", {"click_id": click.click_id, "goal": "sale", "order_id": "S", "token": TOKEN}
    )
    assert response.status_code == 409
    assert response.json() == {
        "result": "rejected",
        "conversion_id": None,
        "status": None,
        "reason": "required_goal_missing",
    }
    assert InboundPostbackLog.objects.get().reason == "required_goal_missing"


# --- pricing --------------------------------------------------------------------------------------


def _price(goal, **fields) -> None:
    for name, value in fields.items():
        setattr(goal, name, value)
    goal.save()


@pytest.mark.parametrize(
    ("rule", "amount", "payout"),
    [
        ({"payout_type": "fixed", "payout": Decimal("2.5")}, None, "2.50"),
        ({"payout_type": "fixed", "payout": Decimal("2.5")}, "999.99", "2.50"),
        ({"payout_type": "fixed", "payout": Decimal("0.005")}, None, "0.01"),
        ({"payout_type": "percent", "payout": Decimal("10")}, "100.50", "10.05"),
        ({"payout_type": "percent", "payout": Decimal("7.5")}, "0.2", "0.02"),  # 0.015 -> 0.02
        ({"payout_type": "percent", "payout": Decimal("7.5")}, "0.19", "0.01"),  # 0.01425
        (
            {"payout_type": "both", "payout": Decimal("1.00"), "payout_percent": Decimal("5")},
            "100.50",
            "6.03",  # 1.00 + 5.025
        ),
        (
            {"payout_type": "both", "payout": Decimal("1.00"), "payout_percent": Decimal("5")},
            None,
            "1.00",  # no amount: the fixed part only
        ),
        (
            {"payout_type": "both", "payout": Decimal("1.00"), "payout_percent": Decimal("5")},
            "0",
            "1.00",
        ),
        (
            {"payout_type": "both", "payout": Decimal("0"), "payout_percent": Decimal("12.5")},
            "10.10",
            "1.26",  # 1.2625
        ),
    ],
)
def test_payout_rules(click, goal, rule, amount, payout):
    _price(goal, **rule)
    extra = {"amount": amount} if amount is not None else {}
    conversion, _ = _record(click, **extra)
    conversion.refresh_from_db()
    assert str(conversion.payout) == payout
    assert conversion.revenue == Decimal("4.00")  # the goal's fixed revenue is untouched


@pytest.mark.parametrize(
    ("rule", "amount", "revenue"),
    [
        ({"revenue_type": "fixed", "revenue": Decimal("4.125")}, "50", "4.13"),
        ({"revenue_type": "percent", "revenue": Decimal("12.5")}, "100.50", "12.56"),
        (
            {"revenue_type": "both", "revenue": Decimal("2.00"), "revenue_percent": Decimal("10")},
            "55.55",
            "7.56",  # 2.00 + 5.555
        ),
        (
            {"revenue_type": "both", "revenue": Decimal("2.00"), "revenue_percent": Decimal("10")},
            None,
            "2.00",
        ),
    ],
)
def test_revenue_rules(click, goal, rule, amount, revenue):
    _price(goal, **rule)
    extra = {"amount": amount} if amount is not None else {}
    conversion, _ = _record(click, **extra)
    conversion.refresh_from_db()
    assert str(conversion.revenue) == revenue
    assert conversion.payout == Decimal("2.50")


@pytest.mark.parametrize(
    "rule",
    [
        {"payout_type": "percent", "payout": Decimal("10")},
        {"revenue_type": "percent", "revenue": Decimal("10")},
        {
            "payout_type": "percent",
            "payout": Decimal("10"),
            "revenue_type": "percent",
            "revenue": Decimal("15"),
        },
    ],
    ids=["payout", "revenue", "both-sides"],
)
def test_percent_without_amount_is_amount_required(click, goal, rule):
    _price(goal, **rule)
    _refused(click, "amount_required", 400, order_id="1")


def test_percent_without_amount_over_http_is_400(client, click, goal):
    _price(goal, revenue_type=PayoutType.PERCENT, revenue=Decimal("10"))
    response = client.get("/postback", {"click_id": click.click_id, "token": TOKEN})
    assert response.status_code == 400
    assert response.json()["reason"] == "amount_required"
    assert Conversion.objects.count() == 0


@pytest.mark.parametrize(
    ("rule", "amount", "payout", "revenue"),
    [
        # 2.5% of 1220 = 30.5 -> 31 (half-up; banker's rounding would give 30)
        (
            {
                "payout_type": "percent",
                "payout": Decimal("2.5"),
                "revenue_type": "percent",
                "revenue": Decimal("3.75"),
            },
            "1220",
            "31",
            "46",  # 45.75
        ),
        (
            {
                "payout_type": "both",
                "payout": Decimal("100"),
                "payout_percent": Decimal("3"),
                "revenue_type": "both",
                "revenue": Decimal("150.5"),
                "revenue_percent": Decimal("4"),
            },
            "1234",
            "137",  # 100 + 37.02
            "200",  # 150.5 + 49.36 = 199.86
        ),
        (
            {"payout_type": "fixed", "payout": Decimal("99.5"), "revenue": Decimal("0.4")},
            None,
            "100",
            "0",
        ),
    ],
)
def test_jpy_rounds_to_whole_yen(click, goal, *, rule, amount, payout, revenue):
    offer = goal.offer
    offer.currency = "JPY"
    offer.save()
    _price(goal, **rule)
    extra = {"amount": amount} if amount is not None else {}
    conversion, _ = _record(click, **extra)
    conversion.refresh_from_db()
    assert (conversion.currency, str(conversion.payout), str(conversion.revenue)) == (
        "JPY",
        f"{payout}.00",  # the column has two places; the value is whole yen
        f"{revenue}.00",
    )
    assert conversion.payout == conversion.payout.to_integral_value()
    assert conversion.revenue == conversion.revenue.to_integral_value()


# --- custom payouts -------------------------------------------------------------------------------


@pytest.fixture
def custom(click, goal):
    """Four custom payouts for the click's affiliate (click country GB), one per scope."""

    def make(goal_=None, country: str = "", payout: str = "0", **kw) -> CustomPayout:
        return CustomPayout.objects.create(
            offer=goal.offer,
            affiliate=click.affiliate,
            goal=goal_,
            country=country,
            payout=Decimal(payout),
            **kw,
        )

    return {
        "offer": make(payout="3.00"),
        "country": make(country="GB", payout="4.00"),
        "goal": make(goal_=goal, payout="5.00"),
        "goal_country": make(goal_=goal, country="GB", payout="6.00"),
    }


def test_custom_payout_precedence(click, goal, custom):
    assert click.country == "GB"
    paid = []
    for scope in ("goal_country", "goal", "country", "offer"):
        conversion, _ = _record(click)
        paid.append((scope, conversion.payout, conversion.revenue))
        Conversion.objects.filter(pk=conversion.pk).delete()
        custom[scope].delete()
    conversion, _ = _record(click)
    paid.append(("none", conversion.payout, conversion.revenue))

    assert paid == [
        ("goal_country", Decimal("6.00"), Decimal("4.00")),
        ("goal", Decimal("5.00"), Decimal("4.00")),
        ("country", Decimal("4.00"), Decimal("4.00")),
        ("offer", Decimal("3.00"), Decimal("4.00")),
        ("none", Decimal("2.50"), Decimal("4.00")),  # the goal's own payout
    ]


def test_country_payout_wins_over_offer_wide_without_a_goal_row(click, goal, custom):
    custom["goal_country"].delete()
    custom["goal"].delete()
    conversion, _ = _record(click)
    assert conversion.payout == Decimal("4.00")


def test_goal_payout_wins_over_country_payout(click, goal, custom):
    custom["goal_country"].delete()
    conversion, _ = _record(click)
    assert conversion.payout == Decimal("5.00")


def test_custom_payouts_that_do_not_apply(click, goal):
    other_goal = factories.GoalFactory(offer=goal.offer, code="sale", is_default=False)
    other_affiliate = factories.AffiliateFactory()
    CustomPayout.objects.create(
        offer=goal.offer, affiliate=click.affiliate, country="US", payout=Decimal("9.00")
    )
    CustomPayout.objects.create(
        offer=goal.offer, affiliate=click.affiliate, goal=other_goal, payout=Decimal("8.00")
    )
    CustomPayout.objects.create(
        offer=goal.offer, affiliate=other_affiliate, goal=goal, payout=Decimal("7.00")
    )
    CustomPayout.objects.create(
        offer=factories.OfferFactory(advertiser=goal.offer.advertiser),
        affiliate=click.affiliate,
        payout=Decimal("6.00"),
    )
    conversion, _ = _record(click)
    assert conversion.payout == Decimal("2.50")


def test_custom_payout_for_the_other_goal_applies_there(click, goal):
    factories.GoalFactory(offer=goal.offer, code="sale", is_default=False, payout=Decimal("12.00"))
    sale = goal.offer.goals.get(code="sale")
    CustomPayout.objects.create(
        offer=goal.offer, affiliate=click.affiliate, goal=sale, payout=Decimal("15.00")
    )
    lead, _ = _record(click)
    bought, _ = _record(click, goal="sale")
    assert (lead.payout, bought.payout) == (Decimal("2.50"), Decimal("15.00"))


@pytest.mark.parametrize(
    ("kind", "payout", "percent", "amount", "expected"),
    [
        ("percent", "20", "0", "100.25", "20.05"),
        ("both", "1.50", "10", "100.25", "11.53"),  # 1.50 + 10.025 = 11.525
        ("both", "1.50", "10", None, "1.50"),
        ("fixed", "3.333", "0", "100", "3.33"),
    ],
)
def test_custom_payout_types(click, goal, *, kind, payout, percent, amount, expected):
    CustomPayout.objects.create(
        offer=goal.offer,
        affiliate=click.affiliate,
        payout_type=kind,
        payout=Decimal(payout),
        payout_percent=Decimal(percent),
    )
    extra = {"amount": amount} if amount is not None else {}
    conversion, _ = _record(click, **extra)
    conversion.refresh_from_db()
    assert str(conversion.payout) == expected
    assert conversion.revenue == Decimal("4.00")


def test_custom_percent_payout_without_amount_is_amount_required(click, goal):
    CustomPayout.objects.create(
        offer=goal.offer,
        affiliate=click.affiliate,
        payout_type=PayoutType.PERCENT,
        payout=Decimal("20"),
    )
    _refused(click, "amount_required", 400)


def test_custom_payout_follows_the_clicks_country(goal, affiliate):
    CustomPayout.objects.create(
        offer=goal.offer, affiliate=affiliate, country="US", payout=Decimal("9.00")
    )
    us_click = factories.ClickFactory(
        offer=goal.offer,
        affiliate=affiliate,
        country="US",
        ip="73.1.2.3",
        created_at=timezone.now() - timedelta(minutes=1),
    )
    conversion, _ = _record(us_click)
    assert conversion.payout == Decimal("9.00")


# --- concurrency ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_not_repeatable_goal_under_20_concurrent_orders_converts_once():
    """20 postbacks for one click at once, each with its own order id: the goal converts once,
    the other 19 are refused (by the pre-check or by the database's partial unique index)."""
    goal = factories.GoalFactory(code="lead")
    click = factories.ClickFactory(
        offer=goal.offer, created_at=timezone.now() - timedelta(minutes=1)
    )
    start = threading.Barrier(20)

    def fire(n: int) -> tuple[str, int, str]:
        try:
            start.wait(timeout=30)
            decision = services.postback_process(
                raw={"click_id": click.click_id, "order_id": f"O-{n}", "token": TOKEN},
                request_ip="127.0.0.1",
                method="GET",
                path="/postback",
                now=timezone.now(),
            )
            return decision.result.value, decision.http_status, decision.reason
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(fire, range(20)))

    assert (
        sorted(answers)
        == [("accepted", 200, "")] + [("rejected", 409, "goal_already_converted")] * 19
    )
    conversion = Conversion.objects.get()
    assert conversion.goal_once is True
    assert InboundPostbackLog.objects.count() == 20
    assert InboundPostbackLog.objects.filter(result="accepted").get().conversion == conversion


@pytest.mark.django_db(transaction=True)
def test_repeatable_goal_under_20_concurrent_orders_converts_20_times():
    goal = factories.GoalFactory(code="lead", is_repeatable=True)
    click = factories.ClickFactory(
        offer=goal.offer, created_at=timezone.now() - timedelta(minutes=1)
    )
    start = threading.Barrier(20)

    def fire(n: int) -> str:
        try:
            start.wait(timeout=30)
            return services.postback_process(
                raw={"click_id": click.click_id, "order_id": f"O-{n}", "token": TOKEN},
                request_ip="127.0.0.1",
                method="GET",
                path="/postback",
                now=timezone.now(),
            ).result.value
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(fire, range(20)))

    assert answers == ["accepted"] * 20
    assert sorted(Conversion.objects.values_list("order_id", flat=True)) == sorted(
        f"O-{n}" for n in range(20)
    )
