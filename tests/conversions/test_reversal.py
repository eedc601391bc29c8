"""`/postback/reversal` as a service (reversal_process / reversal_record): the advertiser takes a
conversion back by conversion id, click id (+ order id) or order id, plus goal.

No URL route for /postback/reversal exists in config/urls.py yet, so these tests call the service
the view will call; the answers and the inbound log are the ones the view will send and write.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.accounts.services import secret_hash
from apps.commissions.models import LedgerEntry
from apps.commissions.services import balance_for_affiliate, commission_accrue
from apps.conversions.models import Conversion, ConversionStatusChange, InboundPostbackLog
from apps.conversions.reversal import reversal_process
from apps.offers.models import ConversionStatus
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN
OTHER_TOKEN = "other-adv-token-456"
PATH = "/postback/reversal"
DEFAULT_REASON = "reversed by the advertiser's reversal postback"


def _reverse(ip: str = "127.0.0.1", **raw: str):
    return reversal_process(raw=raw, request_ip=ip, method="GET", path=PATH, now=timezone.now())


def _status(conversion: Conversion) -> str:
    conversion.refresh_from_db()
    return conversion.status


def _accepted(decision, conversion: Conversion, result: str = "accepted") -> None:
    conversion.refresh_from_db()
    assert decision.http_status == 200
    assert decision.as_json() == {
        "result": result,
        "conversion_id": conversion.pk,
        "status": conversion.status,
        "reason": None,
    }


def _rejected(decision, http_status: int, reason: str) -> None:
    assert decision.http_status == http_status
    assert decision.as_json() == {
        "result": "rejected",
        "conversion_id": None,
        "status": None,
        "reason": reason,
    }


@pytest.fixture
def conversion(click, goal):
    """An approved conversion on the `click` fixture, order A-1."""
    return factories.ConversionFactory(click=click, goal=goal, order_id="A-1")


@pytest.fixture
def other_advertiser(db):
    return factories.AdvertiserFactory(
        postback_token_hash=secret_hash(OTHER_TOKEN), postback_token_prefix=OTHER_TOKEN[:6]
    )


@pytest.fixture
def theirs(other_advertiser):
    """Another advertiser's approved conversion, order A-1 as well."""
    goal = factories.GoalFactory(offer=factories.OfferFactory(advertiser=other_advertiser))
    click = factories.ClickFactory(offer=goal.offer)
    return factories.ConversionFactory(click=click, goal=goal, order_id="A-1")


# --- by each reference ----------------------------------------------------------------------------


def test_by_conversion_id(conversion):
    decision = _reverse(conversion_id=str(conversion.pk), token=TOKEN, reason="chargeback")

    _accepted(decision, conversion)
    assert conversion.status == ConversionStatus.REVERSED
    change = ConversionStatusChange.objects.get(conversion=conversion)
    assert (change.old_status, change.new_status, change.source, change.user_id) == (
        "approved",
        "reversed",
        "reversal_postback",
        None,
    )
    assert change.reason == "chargeback"
    assert conversion.status_changed_at == change.created_at


def test_without_a_reason_the_default_is_recorded(conversion):
    _reverse(conversion_id=str(conversion.pk), token=TOKEN)
    assert ConversionStatusChange.objects.get().reason == DEFAULT_REASON


def test_reason_is_cleaned_and_cut(conversion):
    _reverse(conversion_id=str(conversion.pk), token=TOKEN, reason="re\x00fund " + "x" * 300)
    reason = ConversionStatusChange.objects.get().reason
    assert reason.startswith("refund x")
    assert len(reason) == 255
    assert "\x00" not in reason


def test_by_click_id(conversion, click):
    decision = _reverse(click_id=click.click_id, token=TOKEN)
    _accepted(decision, conversion)
    assert conversion.status == ConversionStatus.REVERSED


@pytest.mark.parametrize("alias", ["transaction_id", "clickid", "cid"])
def test_by_click_id_alias(conversion, click, alias):
    _accepted(_reverse(**{alias: click.click_id, "token": TOKEN}), conversion)


@pytest.fixture
def two_orders(click, goal):
    goal.is_repeatable = True
    goal.save()
    return (
        factories.ConversionFactory(click=click, goal=goal, order_id="O-1"),
        factories.ConversionFactory(click=click, goal=goal, order_id="O-2"),
    )


def test_by_click_and_order(click, two_orders):
    first, second = two_orders
    decision = _reverse(click_id=click.click_id, order_id="O-2", token=TOKEN)
    _accepted(decision, second)
    assert (_status(first), _status(second)) == ("approved", "reversed")


def test_click_with_two_orders_and_no_order_is_ambiguous(click, two_orders):
    _rejected(_reverse(click_id=click.click_id, token=TOKEN), 409, "ambiguous_conversion")
    assert [_status(c) for c in two_orders] == ["approved", "approved"]
    assert ConversionStatusChange.objects.count() == 0


def test_click_with_an_order_it_does_not_have_is_unknown(click, two_orders):
    _rejected(
        _reverse(click_id=click.click_id, order_id="O-3", token=TOKEN), 404, "unknown_conversion"
    )


def test_by_order_id_and_token(conversion, theirs):
    decision = _reverse(order_id="A-1", token=TOKEN)
    _accepted(decision, conversion)
    assert (_status(conversion), _status(theirs)) == ("reversed", "approved")

    decision = _reverse(adv_sub="A-1", token=OTHER_TOKEN)  # HasOffers' name for the order id
    _accepted(decision, theirs)
    assert _status(theirs) == "reversed"


def test_by_order_id_without_a_token_is_bad_token(conversion):
    _rejected(_reverse(order_id="A-1"), 403, "bad_token")
    assert _status(conversion) == "approved"


def test_by_order_id_with_a_wrong_token_is_bad_token(conversion):
    _rejected(_reverse(order_id="A-1", token="wrong"), 403, "bad_token")
    assert _status(conversion) == "approved"


def test_by_order_id_only_searches_the_tokens_advertiser(conversion, other_advertiser):
    """Advertiser Y's token and X's order id: nothing of Y's has it, the same answer as any
    unknown order."""
    decision = _reverse(order_id="A-1", token=OTHER_TOKEN)
    unknown = _reverse(order_id="NO-SUCH-ORDER", token=OTHER_TOKEN)
    _rejected(decision, 404, "unknown_conversion")
    assert (decision.http_status, decision.as_json()) == (unknown.http_status, unknown.as_json())
    assert _status(conversion) == "approved"


def test_overlong_order_id_is_invalid(conversion):
    _rejected(_reverse(order_id="x" * 256, token=TOKEN), 400, "invalid_order_id")


@pytest.fixture
def lead_and_sale(click, goal):
    sale = factories.GoalFactory(offer=goal.offer, code="sale", is_default=False)
    return (
        factories.ConversionFactory(click=click, goal=goal, order_id="ORD"),
        factories.ConversionFactory(click=click, goal=sale, order_id="ORD"),
    )


def test_click_with_two_goals_and_no_goal_is_ambiguous(click, lead_and_sale):
    _rejected(_reverse(click_id=click.click_id, token=TOKEN), 409, "ambiguous_conversion")
    _rejected(
        _reverse(click_id=click.click_id, order_id="ORD", token=TOKEN), 409, "ambiguous_conversion"
    )
    _rejected(_reverse(order_id="ORD", token=TOKEN), 409, "ambiguous_conversion")
    assert [_status(c) for c in lead_and_sale] == ["approved", "approved"]
    assert ConversionStatusChange.objects.count() == 0


@pytest.mark.parametrize(
    "reference",
    [
        lambda click: {"click_id": click.click_id},
        lambda click: {"click_id": click.click_id, "order_id": "ORD"},
        lambda click: {"order_id": "ORD"},
    ],
    ids=["click", "click+order", "order"],
)
def test_goal_picks_one(click, lead_and_sale, reference):
    lead, sale = lead_and_sale
    decision = _reverse(**reference(click), goal="sale", token=TOKEN)
    _accepted(decision, sale)
    assert (_status(lead), _status(sale)) == ("approved", "reversed")


@pytest.mark.parametrize("alias", ["goal_id", "event_id", "goal_alias"])
def test_goal_alias(click, lead_and_sale, alias):
    _accepted(_reverse(click_id=click.click_id, token=TOKEN, **{alias: "lead"}), lead_and_sale[0])


def test_goal_by_its_id(click, lead_and_sale):
    """As HasOffers' and Everflow's postbacks name a goal (goal_id=12)."""
    lead, sale = lead_and_sale
    _accepted(_reverse(click_id=click.click_id, goal_id=str(sale.goal_id), token=TOKEN), sale)
    assert (_status(lead), _status(sale)) == ("approved", "reversed")


def test_a_goal_code_wins_over_another_goals_id(click, lead_and_sale):
    """The offer has a goal whose code is the sale goal's id: the advertiser means that goal,
    which has no conversion on this click, so nothing is reversed."""
    lead, sale = lead_and_sale
    factories.GoalFactory(offer=lead.offer, code=str(sale.goal_id), is_default=False)
    _rejected(
        _reverse(click_id=click.click_id, goal_id=str(sale.goal_id), token=TOKEN),
        404,
        "unknown_conversion",
    )
    assert (_status(lead), _status(sale)) == ("approved", "approved")


def test_a_goal_id_under_goal_is_a_code_only(click, lead_and_sale):
    """`goal` carries a code (Affise, ours); only goal_id, event_id and adv_event_id may carry
    an id."""
    _lead, sale = lead_and_sale
    _rejected(
        _reverse(click_id=click.click_id, goal=str(sale.goal_id), token=TOKEN),
        404,
        "unknown_conversion",
    )


def test_the_id_of_another_offers_goal_matches_nothing(click, lead_and_sale):
    elsewhere = factories.GoalFactory(code="sale", is_default=False)
    _rejected(
        _reverse(click_id=click.click_id, goal_id=str(elsewhere.pk), token=TOKEN),
        404,
        "unknown_conversion",
    )


def test_goal_that_does_not_match_is_unknown(click, lead_and_sale):
    _rejected(
        _reverse(click_id=click.click_id, goal="upsell", token=TOKEN), 404, "unknown_conversion"
    )


def test_goal_that_is_not_a_code_is_unknown_goal(click, lead_and_sale):
    _rejected(_reverse(click_id=click.click_id, goal="bad goal!", token=TOKEN), 400, "unknown_goal")


def test_goal_with_the_conversion_id(conversion):
    _rejected(
        _reverse(conversion_id=str(conversion.pk), goal="sale", token=TOKEN),
        404,
        "unknown_conversion",
    )
    _accepted(_reverse(conversion_id=str(conversion.pk), goal="lead", token=TOKEN), conversion)


# --- statuses and idempotency -------------------------------------------------------------------


def test_second_call_is_a_duplicate(conversion):
    first = _reverse(conversion_id=str(conversion.pk), token=TOKEN)
    second = _reverse(conversion_id=str(conversion.pk), token=TOKEN)
    _accepted(first, conversion)
    _accepted(second, conversion, result="duplicate")
    assert conversion.status == "reversed"
    assert ConversionStatusChange.objects.count() == 1


def test_pending_conversion_is_rejected(conversion):
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.PENDING)
    decision = _reverse(conversion_id=str(conversion.pk), token=TOKEN)
    _accepted(decision, conversion)
    assert conversion.status == "rejected"
    assert ConversionStatusChange.objects.get().old_status == "pending"
    again = _reverse(conversion_id=str(conversion.pk), token=TOKEN)
    _accepted(again, conversion, result="duplicate")


def test_rejected_conversion_is_a_duplicate(conversion):
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.REJECTED)
    _accepted(_reverse(conversion_id=str(conversion.pk), token=TOKEN), conversion, "duplicate")
    assert conversion.status == "rejected"
    assert ConversionStatusChange.objects.count() == 0


def test_reversal_takes_the_commission_back(conversion, affiliate):
    assert commission_accrue() == 1
    _reverse(conversion_id=str(conversion.pk), token=TOKEN)
    assert commission_accrue() == 1
    assert list(
        LedgerEntry.objects.order_by("id").values_list("conversion_id", "kind", "amount")
    ) == [
        (conversion.pk, "commission", Decimal("2.50")),
        (conversion.pk, "reversal", Decimal("-2.50")),
    ]
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("0.00")}


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_params", "status", "reason"),
    [
        # No token: the owner's rules refuse it, and a caller not known to own the conversion
        # hears what it would hear for an id that does not exist.
        ({}, 404, "unknown_conversion"),
        # A wrong token is refused before any conversion is looked up.
        ({"token": "wrong"}, 403, "bad_token"),
        ({"token": TOKEN + "x"}, 403, "bad_token"),
        ({"security_token": "wrong"}, 403, "bad_token"),
    ],
    ids=["missing", "wrong", "longer", "alias-wrong"],
)
def test_bad_token_changes_nothing(conversion, token_params, status, reason):
    decision = _reverse(conversion_id=str(conversion.pk), **token_params)
    _rejected(decision, status, reason)
    assert _status(conversion) == "approved"
    assert ConversionStatusChange.objects.count() == 0
    log = InboundPostbackLog.objects.get()
    assert (log.result, log.reason, log.http_status, log.conversion) == (
        "rejected",
        reason,
        status,
        None,
    )
    for name in token_params:
        assert log.params[name] == "***"


def test_bad_token_is_checked_before_ambiguity(click, lead_and_sale):
    _rejected(_reverse(click_id=click.click_id, token="wrong"), 403, "bad_token")


@pytest.fixture
def allowlisted(conversion):
    advertiser = conversion.offer.advertiser
    advertiser.ip_allowlist = ["203.0.113.0/24"]
    advertiser.save()
    return advertiser


@pytest.mark.parametrize("ip", ["198.51.100.8", "127.0.0.1", None])
def test_ip_not_allowed(conversion, allowlisted, ip):
    decision = _reverse(ip=ip, conversion_id=str(conversion.pk), token=TOKEN)
    _rejected(decision, 403, "ip_not_allowed")
    assert _status(conversion) == "approved"
    assert InboundPostbackLog.objects.get().ip == ip


def test_allowlisted_ip_with_token(conversion, allowlisted):
    _accepted(_reverse(ip="203.0.113.9", conversion_id=str(conversion.pk), token=TOKEN), conversion)
    assert conversion.status == "reversed"


def test_allowlisted_ip_without_token_when_not_required(conversion, allowlisted):
    allowlisted.require_token = False
    allowlisted.save()
    _accepted(_reverse(ip="203.0.113.9", conversion_id=str(conversion.pk)), conversion)


def test_no_token_no_signature_no_allowlist_cannot_reverse_even_when_tokens_are_optional(
    conversion,
):
    """Conversion ids are sequential: an advertiser that lets conversion postbacks in without a
    token does not let anyone count upwards and take them back."""
    advertiser = conversion.offer.advertiser
    advertiser.require_token = False
    advertiser.save()
    _rejected(_reverse(conversion_id=str(conversion.pk)), 404, "unknown_conversion")
    _rejected(_reverse(click_id=conversion.click_id), 404, "unknown_conversion")
    assert _status(conversion) == "approved"
    _accepted(_reverse(conversion_id=str(conversion.pk), token=TOKEN), conversion)


def test_another_advertisers_token_cannot_reverse(conversion, other_advertiser):
    for reference in ({"conversion_id": str(conversion.pk)}, {"click_id": conversion.click_id}):
        decision = _reverse(**reference, token=OTHER_TOKEN)
        assert decision.http_status in (403, 404)
        assert decision.as_json()["result"] == "rejected"
        assert decision.conversion is None
    assert _status(conversion) == "approved"
    assert ConversionStatusChange.objects.count() == 0


def test_another_advertisers_conversion_answers_like_an_unknown_one(conversion, other_advertiser):
    theirs = _reverse(conversion_id=str(conversion.pk), token=OTHER_TOKEN)
    unknown = _reverse(conversion_id="987654321", token=OTHER_TOKEN)
    assert (theirs.http_status, theirs.as_json()) == (unknown.http_status, unknown.as_json())


# --- references that find nothing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"conversion_id": "987654321"},
        {"conversion_id": "abc"},
        {"conversion_id": "-1"},
        {"conversion_id": "1" * 19},
        {"click_id": "clk-does-not-exist"},
        {"click_id": "bad click id!"},
        {"click_id": "x" * 65},
        {"order_id": "NO-SUCH-ORDER"},
    ],
)
def test_unknown_conversion(conversion, raw):
    decision = _reverse(**raw, token=TOKEN)
    _rejected(decision, 404, "unknown_conversion")
    assert _status(conversion) == "approved"


@pytest.mark.parametrize(
    "raw",
    [{}, {"conversion_id": "  "}, {"reason": "x", "goal": "lead"}],
    ids=["none", "blank", "other"],
)
def test_missing_conversion_reference(conversion, raw):
    _rejected(_reverse(**raw, token=TOKEN), 400, "missing_conversion_reference")
    assert _status(conversion) == "approved"


# --- the inbound log ------------------------------------------------------------------------------


def test_each_call_writes_one_log_row_with_its_reason(conversion, click):
    calls = [
        {"conversion_id": str(conversion.pk), "token": "wrong"},
        {"conversion_id": "987654321", "token": TOKEN},
        {"token": TOKEN},
        {"conversion_id": str(conversion.pk), "token": TOKEN, "reason": "chargeback"},
        {"click_id": click.click_id, "token": TOKEN},
    ]
    for raw in calls:
        reversal_process(
            raw=raw, request_ip="192.0.2.10", method="POST", path=PATH, now=timezone.now()
        )

    rows = list(
        InboundPostbackLog.objects.order_by("id").values_list(
            "result", "reason", "http_status", "conversion_id", "method", "path", "ip"
        )
    )
    assert rows == [
        ("rejected", "bad_token", 403, None, "POST", PATH, "192.0.2.10"),
        ("rejected", "unknown_conversion", 404, None, "POST", PATH, "192.0.2.10"),
        ("rejected", "missing_conversion_reference", 400, None, "POST", PATH, "192.0.2.10"),
        ("accepted", "", 200, conversion.pk, "POST", PATH, "192.0.2.10"),
        ("duplicate", "", 200, conversion.pk, "POST", PATH, "192.0.2.10"),
    ]
    accepted = InboundPostbackLog.objects.get(result="accepted")
    assert accepted.params == {
        "conversion_id": str(conversion.pk),
        "token": "***",
        "reason": "chargeback",
    }
    assert accepted.advertiser == conversion.offer.advertiser
    duplicate = InboundPostbackLog.objects.get(result="duplicate")
    assert (duplicate.click_id, duplicate.advertiser) == (
        click.click_id,
        conversion.offer.advertiser,
    )


def test_log_of_a_rejection_by_click_names_the_clicks_advertiser(conversion, click):
    _reverse(click_id=click.click_id, token="wrong")
    log = InboundPostbackLog.objects.get()
    assert (log.reason, log.click_id, log.advertiser) == (
        "bad_token",
        click.click_id,
        click.offer.advertiser,
    )


def test_old_conversion_can_still_be_reversed(click, goal):
    """No attribution window or scrub window applies to the advertiser's reversal postback."""
    old = factories.ConversionFactory(
        click=click, goal=goal, created_at=timezone.now() - timedelta(days=400)
    )
    _accepted(_reverse(conversion_id=str(old.pk), token=TOKEN), old)
    assert old.status == "reversed"


def test_reversal_over_http_get_and_post_json(client, conversion):
    """The route itself: GET with the query string, then a retried POST with a JSON body."""
    response = client.get(
        "/postback/reversal", {"conversion_id": conversion.pk, "token": TOKEN, "reason": "refund"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "result": "accepted",
        "conversion_id": conversion.pk,
        "status": "reversed",
        "reason": None,
    }
    again = client.post(
        "/postback/reversal",
        data=json.dumps({"conversion_id": str(conversion.pk), "token": TOKEN}),
        content_type="application/json",
    )
    assert again.status_code == 200
    assert again.json()["result"] == "duplicate"
    change = ConversionStatusChange.objects.get()
    assert (change.source, change.reason) == ("reversal_postback", "refund")
