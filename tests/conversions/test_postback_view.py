"""`/postback` over HTTP (the test client, through Django and through the WSGI fast path):
answers, rows and the inbound log, exactly."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import got_request_exception
from django.test import Client

from apps.conversions.models import Conversion, InboundPostbackLog
from apps.conversions.views import POSTBACK_PROCESSES
from apps.offers.models import ConversionStatus, PayoutType
from tests import factories
from tests.conversions.conftest import FastPathClient

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN


def _accepted(response, conversion: Conversion, result: str = "accepted") -> None:
    assert response.status_code == 200, response.content
    assert response.json() == {
        "result": result,
        "conversion_id": conversion.pk,
        "status": conversion.status,
        "reason": None,
    }


def _rejected(response, http_status: int, reason: str) -> InboundPostbackLog:
    """The answer is the rejection; no conversion; exactly one log row that says why."""
    assert response.status_code == http_status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "result": "rejected",
        "conversion_id": None,
        "status": None,
        "reason": reason,
    }
    assert Conversion.objects.count() == 0
    log = InboundPostbackLog.objects.get()
    assert (log.result, log.reason, log.http_status, log.conversion_id) == (
        "rejected",
        reason,
        http_status,
        None,
    )
    for name in ("token", "security_token", "verification_token", "secure"):
        if name in log.params:
            assert log.params[name] == "***"
    assert TOKEN not in json.dumps(log.params)
    return log


# --- accepted, duplicate, goals -------------------------------------------------------------------


def test_accepted_postback_answer_row_and_log(client, click, goal):
    response = client.get(
        "/postback",
        {"click_id": click.click_id, "order_id": "A-1", "token": TOKEN, "adv1": "crm-7"},
    )

    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert response.json()["status"] == "approved"
    assert conversion.click == click
    assert conversion.offer == goal.offer
    assert conversion.affiliate == click.affiliate
    assert conversion.goal == goal
    assert conversion.order_id == "A-1"
    assert conversion.status == ConversionStatus.APPROVED
    assert conversion.currency == "USD"
    assert conversion.sale_amount is None
    assert conversion.payout == Decimal("2.50")
    assert conversion.revenue == Decimal("4.00")
    assert (conversion.ip, conversion.country) == (None, "")
    assert (conversion.quality_score, conversion.quality_reasons) == (100, [])
    assert (conversion.adv1, conversion.adv2) == ("crm-7", "")

    log = InboundPostbackLog.objects.get()
    assert log.result == "accepted"
    assert log.reason == ""
    assert log.http_status == 200
    assert log.conversion == conversion
    assert log.advertiser == goal.offer.advertiser
    assert (log.method, log.path, log.ip) == ("GET", "/postback", "127.0.0.1")
    assert (log.click_id, log.order_id) == (click.click_id, "A-1")
    assert log.params == {
        "click_id": click.click_id,
        "order_id": "A-1",
        "token": "***",
        "adv1": "crm-7",
    }


def test_retry_of_same_postback_is_a_duplicate_with_the_same_conversion(client, click):
    params = {"click_id": click.click_id, "order_id": "A-1", "token": TOKEN}
    first = client.get("/postback", params)
    second = client.get("/postback", params)
    # A retry that cannot move an approved conversion (only /postback/reversal can) is the same
    # conversion, unchanged, with the same answer.
    third = client.get("/postback", {**params, "status": "rejected"})

    conversion = Conversion.objects.get()
    _accepted(first, conversion)
    _accepted(second, conversion, result="duplicate")
    _accepted(third, conversion, result="duplicate")
    assert conversion.status == "approved"
    assert conversion.sale_amount is None
    logs = list(InboundPostbackLog.objects.order_by("id").values_list("result", "conversion_id"))
    assert logs == [
        ("accepted", conversion.pk),
        ("duplicate", conversion.pk),
        ("duplicate", conversion.pk),
    ]


def test_same_order_id_with_another_amount_is_a_conflict_and_the_original_stands(client, click):
    params = {"click_id": click.click_id, "order_id": "A-1", "token": TOKEN, "amount": "10.00"}
    first = client.get("/postback", params)
    same_amount_other_spelling = client.get("/postback", {**params, "amount": "10"})
    conflict = client.get("/postback", {**params, "amount": "99"})

    conversion = Conversion.objects.get()
    _accepted(first, conversion)
    _accepted(same_amount_other_spelling, conversion, result="duplicate")
    assert conflict.status_code == 409
    assert conflict.json() == {
        "result": "rejected",
        "conversion_id": None,
        "status": None,
        "reason": "order_conflict",
    }
    assert conversion.sale_amount == Decimal("10.00")
    assert InboundPostbackLog.objects.order_by("-id").first().reason == "order_conflict"


def test_without_order_id_one_conversion_per_click_and_goal(client, click):
    params = {"click_id": click.click_id, "token": TOKEN}
    first = client.get("/postback", params).json()
    second = client.get("/postback", params).json()

    conversion = Conversion.objects.get()
    assert conversion.order_id == ""
    assert (first["result"], second["result"]) == ("accepted", "duplicate")
    assert first["conversion_id"] == second["conversion_id"] == conversion.pk


def test_another_order_id_is_another_conversion_on_a_repeatable_goal(client, click, goal):
    goal.is_repeatable = True
    goal.save()
    first = client.get("/postback", {"click_id": click.click_id, "order_id": "1", "token": TOKEN})
    second = client.get("/postback", {"click_id": click.click_id, "order_id": "2", "token": TOKEN})

    assert (first.json()["result"], second.json()["result"]) == ("accepted", "accepted")
    assert first.json()["conversion_id"] != second.json()["conversion_id"]
    assert sorted(Conversion.objects.values_list("order_id", flat=True)) == ["1", "2"]


def test_a_goal_that_is_not_repeatable_converts_once_per_click(client, click):
    first = client.get("/postback", {"click_id": click.click_id, "order_id": "1", "token": TOKEN})
    second = client.get("/postback", {"click_id": click.click_id, "order_id": "2", "token": TOKEN})

    assert first.json()["result"] == "accepted"
    assert second.status_code == 409
    assert second.json()["reason"] == "goal_already_converted"
    assert list(Conversion.objects.values_list("order_id", flat=True)) == ["1"]


def test_named_goal_and_default_goal(client, click, goal):
    sale = factories.GoalFactory(
        offer=goal.offer,
        code="sale",
        is_default=False,
        payout=Decimal("12.00"),
        revenue=Decimal("20.00"),
    )

    lead = client.get("/postback", {"click_id": click.click_id, "token": TOKEN}).json()
    bought = client.get(
        "/postback", {"click_id": click.click_id, "goal": "sale", "token": TOKEN}
    ).json()

    assert lead["result"] == bought["result"] == "accepted"
    lead_conversion = Conversion.objects.get(pk=lead["conversion_id"])
    sale_conversion = Conversion.objects.get(pk=bought["conversion_id"])
    assert (lead_conversion.goal, lead_conversion.payout) == (goal, Decimal("2.50"))
    assert (sale_conversion.goal, sale_conversion.payout, sale_conversion.revenue) == (
        sale,
        Decimal("12.00"),
        Decimal("20.00"),
    )


def test_explicit_status_overrides_the_goal_default(client, click):
    response = client.get(
        "/postback", {"click_id": click.click_id, "token": TOKEN, "status": "Pending"}
    )
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert conversion.status == "pending"


def test_order_id_of_255_characters_is_accepted(client, click):
    response = client.get(
        "/postback", {"click_id": click.click_id, "token": TOKEN, "order_id": "x" * 255}
    )
    _accepted(response, Conversion.objects.get(order_id="x" * 255))


def test_adv_values_are_cleaned_and_cut(client, click):
    client.get(
        "/postback",
        {"click_id": click.click_id, "token": TOKEN, "adv2": "a\x01b", "adv_sub3": "z" * 300},
    )
    conversion = Conversion.objects.get()
    assert (conversion.adv2, conversion.adv3) == ("ab", "z" * 255)


# --- rejections -----------------------------------------------------------------------------------


def test_missing_click_id(client, goal):
    log = _rejected(client.get("/postback", {"token": TOKEN}), 400, "missing_click_id")
    assert (log.click_id, log.advertiser_id) == ("", None)
    assert log.params == {"token": "***"}


def test_blank_click_id_is_missing(client, goal):
    _rejected(client.get("/postback", {"click_id": "   ", "token": TOKEN}), 400, "missing_click_id")


@pytest.mark.parametrize(
    "click_id",
    [
        "clk-does-not-exist",
        "abc\x00def",
        "x" * 5000,
        "../../etc/passwd",
        "' OR 1=1 --",
        "ключ",
        "{click_id}",
    ],
)
def test_unknown_click(client, click, click_id):
    log = _rejected(
        client.get("/postback", {"click_id": click_id, "token": TOKEN}), 404, "unknown_click"
    )
    assert log.advertiser_id is None
    assert len(log.click_id) <= 64
    assert "\x00" not in log.click_id


def test_unknown_click_via_post_with_nul(client, click):
    _rejected(
        client.post("/postback", {"click_id": click.click_id + "\x00", "token": TOKEN}),
        404,
        "unknown_click",
    )


@pytest.mark.parametrize(
    "token_params",
    [{}, {"token": "wrong"}, {"token": TOKEN + "x"}, {"security_token": "wrong"}],
    ids=["missing", "wrong", "longer", "alias-wrong"],
)
def test_bad_token(client, click, token_params):
    log = _rejected(
        client.get("/postback", {"click_id": click.click_id, **token_params}), 403, "bad_token"
    )
    assert log.advertiser == click.offer.advertiser
    assert log.params == {
        "click_id": click.click_id,
        **dict.fromkeys(token_params, "***"),
    }


def test_a_secret_under_an_unknown_name_is_not_logged_either(client, click):
    """`TOKEN` is not an alias (names are case-sensitive) but it is still masked in the log."""
    log = _rejected(
        client.get("/postback", {"click_id": click.click_id, "TOKEN": TOKEN}), 403, "bad_token"
    )
    assert log.params == {"click_id": click.click_id, "TOKEN": "***"}


def test_advertiser_without_a_token_refuses_token_postbacks(client, click):
    advertiser = click.offer.advertiser
    advertiser.postback_token_hash = ""
    advertiser.save()
    _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN}), 403, "bad_token"
    )


@pytest.fixture
def allowlisted(click):
    advertiser = click.offer.advertiser
    advertiser.ip_allowlist = ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"]
    advertiser.save()
    return advertiser


@pytest.mark.parametrize("remote", ["198.51.100.8", "192.0.2.1", "2001:db9::1"])
def test_ip_not_allowed(client, click, allowlisted, remote):
    log = _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN}, REMOTE_ADDR=remote),
        403,
        "ip_not_allowed",
    )
    assert log.ip == remote
    assert log.advertiser == allowlisted


def test_forwarded_for_from_an_untrusted_peer_does_not_pass_the_allowlist(
    client, click, allowlisted
):
    _rejected(
        client.get(
            "/postback",
            {"click_id": click.click_id, "token": TOKEN},
            REMOTE_ADDR="192.0.2.1",
            HTTP_X_FORWARDED_FOR="203.0.113.9",
        ),
        403,
        "ip_not_allowed",
    )


def test_forwarded_for_from_our_own_proxy_is_the_sender(client, click, allowlisted):
    response = client.get(
        "/postback",
        {"click_id": click.click_id, "token": TOKEN},
        REMOTE_ADDR="127.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    )
    _accepted(response, Conversion.objects.get())
    assert InboundPostbackLog.objects.get().ip == "203.0.113.9"


@pytest.mark.parametrize("remote", ["203.0.113.1", "203.0.113.254", "198.51.100.7", "2001:db8::5"])
def test_allowlisted_ip_with_token_is_accepted(client, click, allowlisted, remote):
    response = client.get(
        "/postback", {"click_id": click.click_id, "token": TOKEN}, REMOTE_ADDR=remote
    )
    _accepted(response, Conversion.objects.get())


def test_allowlisted_ip_still_needs_the_token_when_required(client, click, allowlisted):
    _rejected(
        client.get("/postback", {"click_id": click.click_id}, REMOTE_ADDR="203.0.113.9"),
        403,
        "bad_token",
    )


def test_no_token_needed_from_an_allowlisted_ip_when_not_required(client, click, allowlisted):
    allowlisted.require_token = False
    allowlisted.save()
    response = client.get("/postback", {"click_id": click.click_id}, REMOTE_ADDR="203.0.113.9")
    _accepted(response, Conversion.objects.get())


def test_a_token_sent_must_be_right_even_when_not_required(client, click, allowlisted):
    allowlisted.require_token = False
    allowlisted.save()
    _rejected(
        client.get(
            "/postback", {"click_id": click.click_id, "token": "wrong"}, REMOTE_ADDR="203.0.113.9"
        ),
        403,
        "bad_token",
    )


def test_attribution_window_boundary(click):
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    click.created_at = start
    click.save()
    params = {"click_id": click.click_id, "token": TOKEN}

    with time_machine.travel(start + timedelta(days=30, seconds=1), tick=False):
        _rejected(Client().get("/postback", params), 400, "outside_attribution_window")
    with time_machine.travel(start + timedelta(days=30), tick=False):
        response = Client().get("/postback", params)
    conversion = Conversion.objects.get()
    assert response.json()["result"] == "accepted"
    assert conversion.created_at == start + timedelta(days=30)


def test_a_retry_after_the_window_closed_gets_the_same_answer(click):
    """Retried days apart, past the click's attribution window: still the one conversion, and
    the retry's answer is the duplicate of it, not a refusal."""
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    click.created_at = start
    click.save()
    params = {"click_id": click.click_id, "token": TOKEN, "order_id": "A-1", "amount": "10.00"}
    with time_machine.travel(start + timedelta(days=29), tick=False):
        first = Client().get("/postback", params).json()
    for client in (Client(), FastPathClient()):
        with time_machine.travel(start + timedelta(days=45), tick=False):
            again = client.get("/postback", params).json()
        assert (again["result"], again["conversion_id"]) == ("duplicate", first["conversion_id"])
    assert first["result"] == "accepted"
    assert Conversion.objects.count() == 1


def test_outside_a_shorter_offer_window(client, click):
    offer = click.offer
    offer.attribution_window_days = 1
    offer.save()
    click.created_at = click.created_at - timedelta(days=2)
    click.save()
    _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN}),
        400,
        "outside_attribution_window",
    )


@pytest.mark.parametrize("code", ["nope", "bad code!", "lead\x00", "g" * 100])
def test_unknown_goal(client, click, code):
    _rejected(
        client.get("/postback", {"click_id": click.click_id, "goal": code, "token": TOKEN}),
        400,
        "unknown_goal",
    )


def test_goal_of_another_offer_is_unknown(client, click):
    factories.GoalFactory(code="sale", is_default=False)  # on another offer
    _rejected(
        client.get("/postback", {"click_id": click.click_id, "goal": "sale", "token": TOKEN}),
        400,
        "unknown_goal",
    )


def test_no_goal_and_no_default_goal_is_unknown_goal(client, click, goal):
    goal.is_default = False
    goal.save()
    _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN}), 400, "unknown_goal"
    )


INVALID_AMOUNTS = [
    "-5",
    "-0.01",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e5",
    "1E5",
    "1,000.00",
    "1.000,50",
    "10,5",
    "1000000000000",
    "1000000000.01",
    "1e12",
    "10.12345",
    "0.00001",
    ".",
    "-",
    "+5",
    ".5",
    "5.",
    "1.2.3",
    "1 000",
    "0x10",
    "12abc",
    "$10",
    "10USD",
    "١٢٣",
    "\uff11\uff10\uff10",
    "²",
    "1" * 33,
    "{amount}",
]


@pytest.mark.parametrize("amount", INVALID_AMOUNTS)
def test_invalid_amount(client, click, amount):
    log = _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN, "amount": amount}),
        400,
        "invalid_amount",
    )
    assert log.params["amount"] == amount[:256]


def test_blank_amount_is_no_amount(client, click):
    response = client.get("/postback", {"click_id": click.click_id, "token": TOKEN, "amount": "  "})
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert conversion.sale_amount is None


def test_percent_goal_needs_an_amount(client, click, goal):
    goal.payout_type = PayoutType.PERCENT
    goal.revenue_type = PayoutType.PERCENT
    goal.payout = Decimal("10")
    goal.save()
    _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN}),
        400,
        "amount_required",
    )


@pytest.mark.parametrize("status", ["paid", "4", "0", "reversed", "approved!"])
def test_invalid_status(client, click, status):
    _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN, "status": status}),
        400,
        "invalid_status",
    )


@pytest.mark.parametrize("order_id", ["x" * 256, "x" * 10_000, "a\x00b"])
def test_invalid_order_id(client, click, order_id):
    log = _rejected(
        client.get("/postback", {"click_id": click.click_id, "token": TOKEN, "order_id": order_id}),
        400,
        "invalid_order_id",
    )
    assert log.order_id == order_id.replace("\x00", "")[:255]


def test_rejections_are_checked_in_order_auth_before_input(client, click, allowlisted):
    """A stranger learns nothing about goals or amounts: authentication fails first."""
    _rejected(
        client.get(
            "/postback",
            {"click_id": click.click_id, "goal": "nope", "amount": "NaN"},
            REMOTE_ADDR="192.0.2.1",
        ),
        403,
        "ip_not_allowed",
    )


# --- aliases and request shapes -------------------------------------------------------------------


@pytest.fixture
def sale_goal(goal):
    return factories.GoalFactory(
        offer=goal.offer,
        code="sale",
        is_default=False,
        payout_type=PayoutType.PERCENT,
        revenue_type=PayoutType.PERCENT,
        payout=Decimal("10"),
        revenue=Decimal("15"),
    )


@pytest.mark.parametrize("path", ["/aff_lsr", "/aff_goal"])
def test_hasoffers_aliases(client, click, sale_goal, path):
    response = client.get(
        path,
        {
            "transaction_id": click.click_id,
            "adv_sub": "HO-9",
            "goal_id": "sale",
            "security_token": TOKEN,
            "amount": "100.50",
            "adv_sub2": "x",
        },
    )
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert (conversion.click, conversion.goal, conversion.order_id) == (click, sale_goal, "HO-9")
    assert (conversion.sale_amount, conversion.payout, conversion.revenue) == (
        Decimal("100.50"),
        Decimal("10.05"),
        Decimal("15.08"),
    )
    assert conversion.adv2 == "x"
    log = InboundPostbackLog.objects.get()
    assert log.path == path
    assert log.params["security_token"] == "***"


@pytest.mark.parametrize("event_name", ["event_id", "adv_event_id"])
def test_everflow_aliases(client, click, sale_goal, event_name):
    response = client.get(
        "/postback",
        {
            "transaction_id": click.click_id,
            event_name: "sale",
            "verification_token": TOKEN,
            "sale_amount": "20",
            "order_id": "EF-1",
        },
    )
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert (conversion.goal, conversion.payout, conversion.order_id) == (
        sale_goal,
        Decimal("2.00"),
        "EF-1",
    )
    assert InboundPostbackLog.objects.get().params["verification_token"] == "***"


@pytest.mark.parametrize(
    ("status", "expected"),
    [("1", "approved"), ("2", "pending"), ("3", "rejected"), ("5", "pending")],
)
def test_affise_aliases_and_numeric_status(client, click, sale_goal, status, expected):
    response = client.get(
        "/postback",
        {"clickid": click.click_id, "goal": "sale", "sum": "50", "secure": TOKEN, "status": status},
    )
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert (conversion.status, conversion.goal, conversion.payout) == (
        expected,
        sale_goal,
        Decimal("5.00"),
    )
    assert InboundPostbackLog.objects.get().params["secure"] == "***"


@pytest.mark.parametrize(
    ("status", "expected"),
    [("approved", "approved"), ("pending", "pending"), ("declined", "rejected")],
)
def test_scaleo_conv_status(client, click, status, expected):
    response = client.get(
        "/postback", {"cid": click.click_id, "token": TOKEN, "conv_status": status}
    )
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert conversion.status == expected


def test_canonical_name_wins_over_alias(client, click):
    other = factories.ClickFactory(offer=click.offer)
    client.get(
        "/postback", {"click_id": click.click_id, "transaction_id": other.click_id, "token": TOKEN}
    )
    assert Conversion.objects.get().click == click


def test_post_multipart_form(client, click):
    response = client.post(
        "/postback", {"click_id": click.click_id, "order_id": "F-1", "token": TOKEN}
    )
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert conversion.order_id == "F-1"
    log = InboundPostbackLog.objects.get()
    assert (log.method, log.params["token"]) == ("POST", "***")


def test_post_urlencoded_form_body_wins_over_query(client, click):
    response = client.post(
        "/postback?order_id=from-query&adv1=q",
        urlencode({"click_id": click.click_id, "order_id": "from-body", "token": TOKEN}),
        content_type="application/x-www-form-urlencoded",
    )
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert (conversion.order_id, conversion.adv1) == ("from-body", "q")


def test_post_json(client, click, sale_goal):
    # A JSON number is kept as the text sent ("100.50"), never read through a float.
    body = (
        f'{{"click_id": "{click.click_id}", "goal": "sale", "amount": 100.50, '
        f'"order_id": 12345, "token": "{TOKEN}", "adv1": {{"nested": "dropped"}}}}'
    )
    response = client.post("/postback", body, content_type="application/json")
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert (conversion.order_id, conversion.sale_amount, conversion.payout) == (
        "12345",
        Decimal("100.50"),
        Decimal("10.05"),
    )
    assert conversion.adv1 == ""
    log = InboundPostbackLog.objects.get()
    assert log.params == {
        "click_id": click.click_id,
        "goal": "sale",
        "amount": "100.50",
        "order_id": "12345",
        "token": "***",
    }


def test_json_amount_rounds_half_up(client, click, sale_goal):
    """0.125 at 100% is 0.13: half-up, on the Decimal of the digits sent."""
    sale_goal.payout = Decimal("100")
    sale_goal.save()
    body = (
        f'{{"click_id": "{click.click_id}", "goal": "sale", "amount": 0.125, "token": "{TOKEN}"}}'
    )
    client.post("/postback", body, content_type="application/json")
    conversion = Conversion.objects.get()
    assert (conversion.sale_amount, conversion.payout) == (Decimal("0.125"), Decimal("0.13"))


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e5", "-1", "1.123456"])
def test_json_non_plain_numbers_are_invalid_amounts(client, click, number):
    body = f'{{"click_id": "{click.click_id}", "amount": {number}, "token": "{TOKEN}"}}'
    _rejected(
        client.post("/postback", body, content_type="application/json"), 400, "invalid_amount"
    )


def test_json_with_charset(client, click):
    response = client.post(
        "/postback",
        json.dumps({"click_id": click.click_id, "token": TOKEN}),
        content_type="application/json; charset=utf-8",
    )
    _accepted(response, Conversion.objects.get())


def _nothing_written() -> None:
    """No conversion; the call itself is still in the debugger log, with its reason."""
    assert Conversion.objects.count() == 0
    log = InboundPostbackLog.objects.get()
    assert log.result == "rejected"
    assert log.reason in ("malformed_request", "body_too_large")
    assert log.conversion is None


MALFORMED_REJECTION = {
    "result": "rejected",
    "conversion_id": None,
    "status": None,
    "reason": "malformed_request",
}


@pytest.mark.parametrize(
    "body",
    [
        b'{"click_id": ',
        b"not json",
        b'["click_id", "x"]',
        b'"a string"',
        b"42",
        b"null",
        b'{"click_id": "\xff"}',
        b"[" * 5000,
        b'{"a":' * 5000,
        b'{"click_id": "x", "order_id": "\\ud800"}',
        b'{"\\udfff": "x"}',
    ],
    ids=[
        "truncated",
        "text",
        "array",
        "string",
        "number",
        "null",
        "bad-utf8",
        "deep",
        "deep-obj",
        "lone-surrogate",
        "surrogate-name",
    ],
)
def test_malformed_json_body(client, click, body):
    response = client.post("/postback", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == MALFORMED_REJECTION
    _nothing_written()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=", b"--\r\nx"),
        ("application/x-www-form-urlencoded; charset=latin-1", b"click_id=x"),
    ],
    ids=["no-boundary", "latin-1-form"],
)
def test_form_body_django_cannot_read_is_malformed(client, click, content_type, body):
    response = client.post("/postback", body, content_type=content_type)
    assert response.status_code == 400
    assert response.json() == MALFORMED_REJECTION
    _nothing_written()


@pytest.mark.parametrize("path", ["/postback", "/postback/reversal"])
@pytest.mark.parametrize(
    "query",
    [
        {"coupon_code": "\x00"},
        {"coupon_code": "SAVE10", "offer_id": "\u00b2"},
        {"coupon_code": "SAVE10", "offer_id": "9" * 40},
        {"conversion_id": "\u00b2"},
        {"conversion_id": "9" * 40},
        {"click_id": "abc", "order_id": "\x00"},
        {"order_id": "\x00", "token": TOKEN},
    ],
    ids=[
        "coupon-nul",
        "offer-id-superscript",
        "offer-id-huge",
        "conversion-id-superscript",
        "conversion-id-huge",
        "order-id-nul",
        "order-id-nul-by-order",
    ],
)
def test_hostile_ids_are_refused_with_a_reason(client, click, path, query):
    """Never a 500: each answer is a 4xx with a reason, and nothing is converted or reversed."""
    response = client.get(path, query)
    assert 400 <= response.status_code < 500, (response.status_code, response.content)
    assert response.json()["result"] == "rejected"
    assert response.json()["reason"]
    assert Conversion.objects.count() == 0


def test_empty_json_body_is_an_empty_object(client, click):
    response = client.post(
        f"/postback?click_id={click.click_id}&token={TOKEN}", b"", content_type="application/json"
    )
    _accepted(response, Conversion.objects.get())


def test_too_many_fields_is_malformed(client, click):
    query = urlencode({f"f{i}": "1" for i in range(300)})
    response = client.get(f"/postback?{query}")
    assert response.status_code == 400
    assert response.json() == MALFORMED_REJECTION
    _nothing_written()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", json.dumps({"click_id": "x", "pad": "a" * 70_000})),
        (
            "application/x-www-form-urlencoded",
            urlencode({"click_id": "x", "pad": "a" * 70_000}),
        ),
    ],
    ids=["json", "form"],
)
def test_body_over_the_limit(client, click, settings, content_type, body):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 64 * 1024
    response = client.post("/postback", body, content_type=content_type)
    assert response.status_code == 413
    assert response.json() == {
        "result": "rejected",
        "conversion_id": None,
        "status": None,
        "reason": "body_too_large",
    }
    _nothing_written()


def test_multipart_file_parts_count_toward_the_limit(client, click):
    """Django leaves files out of DATA_UPLOAD_MAX_MEMORY_SIZE; a postback has no files to send."""
    upload = SimpleUploadedFile("x.bin", b"a" * 70_000)
    response = client.post(
        "/postback", {"click_id": click.click_id, "token": TOKEN, "file": upload}
    )
    assert response.status_code == 413
    assert response.json()["reason"] == "body_too_large"
    _nothing_written()


def test_small_multipart_file_parts_are_ignored(client, click):
    upload = SimpleUploadedFile("x.bin", b"a" * 100)
    response = client.post(
        "/postback", {"click_id": click.click_id, "token": TOKEN, "file": upload}
    )
    conversion = Conversion.objects.get()
    _accepted(response, conversion)
    assert "file" not in InboundPostbackLog.objects.get().params


def test_body_just_under_the_limit_is_read(client, click):
    body = {"click_id": click.click_id, "token": TOKEN, "pad": ""}
    body["pad"] = "a" * (64 * 1024 - len(json.dumps(body)))
    encoded = json.dumps(body)
    assert len(encoded) == 64 * 1024
    response = client.post("/postback", encoded, content_type="application/json")
    _accepted(response, Conversion.objects.get())
    assert len(InboundPostbackLog.objects.get().params["pad"]) == 256


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods_are_not_allowed(client, click, method):
    response = getattr(client, method)(f"/postback?click_id={click.click_id}&token={TOKEN}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert Conversion.objects.count() == 0
    assert InboundPostbackLog.objects.count() == 0


def test_log_params_are_bounded(client, click):
    params = {f"p{i:03d}": "v" * 1000 for i in range(60)}
    params.update({"click_id": click.click_id, "token": TOKEN})
    client.get("/postback", params)
    logged = InboundPostbackLog.objects.get().params
    assert len(logged) == 51
    assert logged["…"] == "12 more parameters"
    assert logged["p000"] == "v" * 256


def test_the_fast_path_answers_a_server_fault_with_json_and_logs_it(monkeypatch, caplog):
    """A fault of ours (not bad input) on the WSGI fast path: a JSON 500, with the traceback in
    the log and the got_request_exception signal, as Django answers it on the other paths."""

    def broken(**_kwargs: object) -> None:
        raise RuntimeError("database on fire")

    reported: list[BaseException | None] = []

    def error_reporter(**_kwargs: object) -> None:
        reported.append(sys.exc_info()[1])

    monkeypatch.setitem(POSTBACK_PROCESSES, "/postback", broken)
    got_request_exception.connect(error_reporter)
    try:
        response = FastPathClient().get("/postback", {"click_id": "x", "token": TOKEN})
    finally:
        got_request_exception.disconnect(error_reporter)
    assert [str(exc) for exc in reported] == ["database on fire"]  # as Django tells reporters
    assert response.status_code == 500
    assert response.json() == {
        "result": "error",
        "conversion_id": None,
        "status": None,
        "reason": "server_error",
    }
    assert "database on fire" in caplog.text
