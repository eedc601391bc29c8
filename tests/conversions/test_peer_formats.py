"""Drop-in compatibility: each platform's documented advertiser postback, fired at our endpoints.

An advertiser moving from HasOffers (TUNE), Everflow, Affise or Scaleo changes only the host of the
postback it already fires: same path where the platform has its own, same parameter names, same
status codes. Each format is sent as GET, as a POST form and as a POST JSON body, and the stored
conversion's goal, amount, order id and status are checked, with the log row.

Sources for the names (their public docs): HasOffers `aff_lsr?offer_id&transaction_id&adv_sub&
adv_sub2…5&amount&security_token`, `aff_goal?a=lsr&goal_id&…`; Everflow `transaction_id`,
`event_id`/`adv_event_id`, `amount`/`sale_amount`, `order_id`, `adv1…5`, `coupon_code`,
`verification_token` (plus `nid`, `oid`, `aid`, which identify the network and offer there and
are ignored here); Affise `clickid`/`click_id`, `action_id`, `goal`, `sum`, `status` 1/2/3/5,
`secure`, `custom_field1…`; Scaleo `click_id`, `goal_id`/`goal_alias`, `amount`, `conv_status`,
`adv_order_id`, `adv_param1…5`, `token`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from apps.accounts.services import secret_hash
from apps.conversions.models import Conversion, InboundPostbackLog
from apps.offers.models import ConversionStatus, PayoutType
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN
CLICK = "{click}"  # replaced by the test's click id


@pytest.fixture
def sale_goal(goal):
    """A second goal, "sale", paying 10% of the sale amount (the lead goal stays the default)."""
    return factories.GoalFactory(
        offer=goal.offer,
        code="sale",
        is_default=False,
        is_repeatable=True,
        payout_type=PayoutType.PERCENT,
        revenue_type=PayoutType.PERCENT,
        payout=Decimal("10"),
        revenue=Decimal("15"),
        default_status=ConversionStatus.APPROVED,
    )


@dataclass(frozen=True)
class PeerPostback:
    path: str
    params: dict[str, str]
    goal: str
    amount: Decimal | None
    order_id: str
    status: str
    adv: dict[str, str] = field(default_factory=dict)


PEER_POSTBACKS = {
    "hasoffers-aff_lsr": PeerPostback(
        "/aff_lsr",
        {
            "offer_id": "17",
            "transaction_id": CLICK,
            "adv_sub": "HO-1001",
            "adv_sub2": "crm-a",
            "adv_sub5": "crm-e",
            "amount": "129.90",
            "security_token": TOKEN,
        },
        goal="lead",
        amount=Decimal("129.90"),
        order_id="HO-1001",
        status="approved",
        adv={"adv2": "crm-a", "adv5": "crm-e"},
    ),
    "hasoffers-aff_goal": PeerPostback(
        "/aff_goal",
        {
            "a": "lsr",
            "goal_id": "sale",
            "transaction_id": CLICK,
            "adv_sub": "HO-1002",
            "amount": "50.00",
            "security_token": TOKEN,
        },
        goal="sale",
        amount=Decimal("50.00"),
        order_id="HO-1002",
        status="approved",
    ),
    "everflow-adv_event_id": PeerPostback(
        "/postback",
        {
            "nid": "1234",
            "oid": "99",
            "aid": "7",
            "transaction_id": CLICK,
            "adv_event_id": "sale",
            "amount": "75.5",
            "order_id": "EF-77",
            "adv1": "sku-1",
            "verification_token": TOKEN,
        },
        goal="sale",
        amount=Decimal("75.5"),
        order_id="EF-77",
        status="approved",
        adv={"adv1": "sku-1"},
    ),
    "everflow-event_id-sale_amount": PeerPostback(
        "/postback",
        {
            "nid": "1234",
            "transaction_id": CLICK,
            "event_id": "sale",
            "sale_amount": "20",
            "order_id": "EF-78",
            "coupon_code": "IGNORED-WITH-A-CLICK",
            "verification_token": TOKEN,
        },
        goal="sale",
        amount=Decimal("20"),
        order_id="EF-78",
        status="approved",
    ),
    "everflow-base-conversion": PeerPostback(
        "/postback",
        {"nid": "1234", "transaction_id": CLICK, "verification_token": TOKEN},
        goal="lead",
        amount=None,
        order_id="",
        status="approved",
    ),
    **{
        f"affise-status-{code}": PeerPostback(
            "/postback",
            {
                "clickid": CLICK,
                "action_id": f"AF-{code}",
                "goal": "sale",
                "sum": "40.00",
                "status": code,
                "secure": TOKEN,
                "custom_field1": "cf-one",
                "custom_field3": "cf-three",
            },
            goal="sale",
            amount=Decimal("40.00"),
            order_id=f"AF-{code}",
            status=status,
            adv={"adv1": "cf-one", "adv3": "cf-three"},
        )
        for code, status in [
            ("1", "approved"),
            ("2", "pending"),
            ("3", "rejected"),
            ("5", "pending"),
        ]
    },
    "affise-click_id": PeerPostback(
        "/postback",
        {"click_id": CLICK, "action_id": "AF-9", "secure": TOKEN},
        goal="lead",
        amount=None,
        order_id="AF-9",
        status="approved",
    ),
    **{
        f"scaleo-{conv_status}": PeerPostback(
            "/postback",
            {
                "click_id": CLICK,
                "token": TOKEN,
                "goal_alias": "sale",
                "conv_status": conv_status,
                "amount": "300.00",
                "adv_order_id": f"SC-{conv_status}",
                "adv_param1": "p1",
                "adv_param2": "p2",
            },
            goal="sale",
            amount=Decimal("300.00"),
            order_id=f"SC-{conv_status}",
            status=status,
            adv={"adv1": "p1", "adv2": "p2"},
        )
        for conv_status, status in [
            ("approved", "approved"),
            ("pending", "pending"),
            ("hold", "pending"),
            ("rejected", "rejected"),
        ]
    },
    "scaleo-goal_id": PeerPostback(
        "/postback",
        {"click_id": CLICK, "token": TOKEN, "goal_id": "sale", "conv_status": "approved"},
        goal="sale",
        amount=None,
        order_id="",
        status="approved",
    ),
}


def _fire(client, peer: PeerPostback, click_id: str, transport: str):
    params = {key: value.replace(CLICK, click_id) for key, value in peer.params.items()}
    if transport == "get":
        return client.get(peer.path, params)
    if transport == "form":
        return client.post(
            peer.path, urlencode(params), content_type="application/x-www-form-urlencoded"
        )
    return client.post(peer.path, json.dumps(params), content_type="application/json")


@pytest.mark.parametrize("transport", ["get", "form", "json"])
@pytest.mark.parametrize("name", list(PEER_POSTBACKS))
def test_peer_postback_records_the_same_conversion(client, click, sale_goal, name, transport):
    peer = PEER_POSTBACKS[name]
    if peer.goal == "sale" and peer.amount is None:
        sale_goal.payout_type = sale_goal.revenue_type = PayoutType.FIXED
        sale_goal.save()
    response = _fire(client, peer, click.click_id, transport)

    assert response.status_code == 200, response.content
    conversion = Conversion.objects.get()
    assert response.json() == {
        "result": "accepted",
        "conversion_id": conversion.pk,
        "status": peer.status,
        "reason": None,
    }
    assert conversion.click_id == click.click_id
    assert conversion.goal.code == peer.goal
    assert conversion.sale_amount == peer.amount
    assert conversion.order_id == peer.order_id
    assert conversion.status == peer.status
    for key in ("adv1", "adv2", "adv3", "adv4", "adv5"):
        assert getattr(conversion, key) == peer.adv.get(key, ""), key
    if peer.goal == "sale" and peer.amount is not None:
        assert conversion.payout == (peer.amount * Decimal("0.10")).quantize(Decimal("0.01"))
    log = InboundPostbackLog.objects.get()
    assert (log.path, log.method, log.result, log.conversion) == (
        peer.path,
        "GET" if transport == "get" else "POST",
        "accepted",
        conversion,
    )
    assert TOKEN not in json.dumps(log.params) + log.body


@pytest.mark.parametrize("transport", ["get", "form", "json"])
def test_a_retry_in_any_dialect_is_a_duplicate(client, click, sale_goal, transport):
    peer = PEER_POSTBACKS["hasoffers-aff_lsr"]
    first = _fire(client, peer, click.click_id, transport).json()
    again = _fire(client, peer, click.click_id, transport).json()
    assert again == {**first, "result": "duplicate"}
    assert Conversion.objects.count() == 1


def test_affise_status_update_moves_a_pending_conversion(client, click, sale_goal):
    """Affise advertisers send the same action again with the final status."""
    pending = {"clickid": click.click_id, "action_id": "AF-1", "goal": "sale", "secure": TOKEN}
    client.get("/postback", {**pending, "sum": "40.00", "status": "2"})
    assert Conversion.objects.get().status == "pending"
    response = client.get("/postback", {**pending, "sum": "40.00", "status": "1"})
    assert response.json()["result"] == "duplicate"
    assert Conversion.objects.get().status == "approved"


# --- bad input in every dialect: refused with a reason, nothing written ---------------------------


def _refused(response, http_status: int, reason: str) -> InboundPostbackLog:
    assert response.status_code == http_status, response.content
    assert response.json()["reason"] == reason
    assert Conversion.objects.count() == 0
    log = InboundPostbackLog.objects.get()
    assert (log.result, log.reason, log.conversion) == ("rejected", reason, None)
    return log


AMOUNT_DIALECTS = {
    "hasoffers": ("/aff_lsr", "amount", {"transaction_id": CLICK, "security_token": TOKEN}),
    "everflow": (
        "/postback",
        "sale_amount",
        {"transaction_id": CLICK, "verification_token": TOKEN},
    ),
    "affise": ("/postback", "sum", {"clickid": CLICK, "secure": TOKEN}),
}


@pytest.mark.parametrize(
    "amount",
    [
        "1.234,56",
        "1,234.56",
        "1 234,56",
        "1'234.56",
        "12,5",
        "-10.00",
        "NaN",
        "inf",
        "1e3",
        "1000000000.01",
        "99999999999999999999",
        "$10",
        "10 EUR",
    ],
)
@pytest.mark.parametrize("dialect", list(AMOUNT_DIALECTS))
def test_locale_and_out_of_range_amounts_are_refused(client, click, dialect, amount):
    path, amount_name, base = AMOUNT_DIALECTS[dialect]
    params = {key: value.replace(CLICK, click.click_id) for key, value in base.items()}
    log = _refused(client.get(path, {**params, amount_name: amount}), 400, "invalid_amount")
    assert log.params[amount_name] == amount


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/aff_goal", {"a": "lsr", "goal_id": "999999999", "transaction_id": CLICK}),
        ("/postback", {"adv_event_id": "999999999", "transaction_id": CLICK}),
        ("/postback", {"goal": "upsell", "clickid": CLICK}),
        ("/postback", {"goal_alias": "deposit", "click_id": CLICK}),
    ],
    ids=["hasoffers", "everflow", "affise", "scaleo"],
)
def test_unknown_goals(client, click, sale_goal, path, params):
    params = {key: value.replace(CLICK, click.click_id) for key, value in params.items()}
    _refused(client.get(path, {**params, "token": TOKEN}), 400, "unknown_goal")


@pytest.mark.parametrize(
    ("path", "name"),
    [("/aff_goal", "goal_id"), ("/postback", "adv_event_id"), ("/postback", "event_id")],
    ids=["hasoffers", "everflow-adv_event_id", "everflow-event_id"],
)
def test_the_goal_by_its_id_as_hasoffers_and_everflow_send_it(client, click, sale_goal, path, name):
    """Their postbacks name the goal by its number; an advertiser moving over keeps them."""
    response = client.get(
        path,
        {"a": "lsr", name: str(sale_goal.pk), "transaction_id": click.click_id, "amount": "20"}
        | {"adv_sub": "ID-1", "order_id": "ID-1", "token": TOKEN},
    )
    assert response.status_code == 200, response.content
    assert Conversion.objects.get().goal == sale_goal


@pytest.mark.parametrize("name", ["goal", "goal_alias"])
def test_a_number_under_a_code_name_is_a_code_only(client, click, sale_goal, name):
    """`goal` (ours, Affise) and `goal_alias` (Scaleo) carry codes: a number there that is no
    goal's code is unknown, whatever goal has it as its id."""
    _refused(
        client.get(
            "/postback", {name: str(sale_goal.pk), "click_id": click.click_id, "token": TOKEN}
        ),
        400,
        "unknown_goal",
    )


def test_a_goal_code_wins_over_another_goals_id(client, click, goal, sale_goal):
    """A goal whose code is the number another goal has as its id is the one meant."""
    numbered = factories.GoalFactory(offer=goal.offer, code=str(sale_goal.pk), is_default=False)
    client.get(
        "/postback", {"goal_id": str(sale_goal.pk), "click_id": click.click_id, "token": TOKEN}
    )
    assert Conversion.objects.get().goal == numbered


def test_the_id_of_another_offers_goal_is_unknown(client, click, sale_goal):
    elsewhere = factories.GoalFactory(code="sale", is_default=False)
    _refused(
        client.get(
            "/postback",
            {"goal_id": str(elsewhere.pk), "click_id": click.click_id, "token": TOKEN},
        ),
        400,
        "unknown_goal",
    )


def test_expired_click(client, click):
    click.created_at -= timedelta(days=click.offer.attribution_window_days, minutes=1)
    click.save()
    _refused(
        client.get(
            "/aff_lsr",
            {"transaction_id": click.click_id, "adv_sub": "O-1", "security_token": TOKEN},
        ),
        400,
        "outside_attribution_window",
    )


def test_another_advertisers_click_with_our_token_is_refused(client, click):
    """A click id of another advertiser's offer: our token is not theirs."""
    theirs = factories.AdvertiserFactory(
        postback_token_hash=secret_hash("their-token-456"), postback_token_prefix="their-"
    )
    foreign = factories.ClickFactory(
        offer=factories.OfferFactory(advertiser=theirs), affiliate=click.affiliate
    )
    factories.GoalFactory(offer=foreign.offer, code="lead")
    log = _refused(
        client.get("/postback", {"click_id": foreign.click_id, "token": TOKEN}), 403, "bad_token"
    )
    assert log.advertiser == theirs


@pytest.mark.parametrize("path", ["/aff_lsr", "/aff_goal", "/postback"])
def test_oversized_body_on_every_path(client, click, path):
    body = json.dumps({"transaction_id": click.click_id, "pad": "a" * 70_000})
    response = client.post(path, body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["reason"] == "body_too_large"
    assert Conversion.objects.count() == 0
    log = InboundPostbackLog.objects.get()
    assert (log.reason, log.path, log.body) == ("body_too_large", path, "")
