"""Affiliate postbacks: which URLs a conversion fires, and delivery to a real local HTTP server."""

from __future__ import annotations

import json
import socket
from base64 import b64decode
from decimal import Decimal

import pytest
from celery.exceptions import Retry

from apps.common.redis import redis_client
from apps.conversions import outbound
from apps.conversions.models import OutboundPostbackDelivery
from apps.conversions.tasks import deliver_affiliate_postback, fire_affiliate_postbacks
from apps.offers.models import ConversionStatus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversion(goal, affiliate):
    click = factories.ClickFactory(
        offer=goal.offer,
        affiliate=affiliate,
        sub1="a b&c=d",
        aff_click_id="their/1?x",
    )
    return factories.ConversionFactory(
        click=click,
        goal=goal,
        order_id="A&B=1 /x",
        payout=Decimal("3.10"),
        sale_amount=Decimal("100.50"),
    )


def _postback(conversion, url: str, **kwargs):
    return factories.AffiliatePostbackFactory(affiliate=conversion.affiliate, url=url, **kwargs)


def _deliveries(conversion) -> list[tuple]:
    return list(
        OutboundPostbackDelivery.objects.filter(conversion=conversion)
        .order_by("id")
        .values_list("attempt", "http_status", "succeeded", "conversion_status")
    )


# --- scope ----------------------------------------------------------------------------------------


@pytest.fixture
def scoped(conversion, goal):
    other_offer = factories.OfferFactory()
    other_goal = factories.GoalFactory(offer=goal.offer, code="sale", is_default=False)
    make = factories.AffiliatePostbackFactory
    aff = conversion.affiliate
    return {
        "global": make(affiliate=aff),
        "offer": make(affiliate=aff, offer=goal.offer),
        "goal": make(affiliate=aff, offer=goal.offer, goal=goal),
        "global_pending": make(affiliate=aff, fire_on_pending=True),
        "goal_pending": make(affiliate=aff, offer=goal.offer, goal=goal, fire_on_pending=True),
        "other_offer": make(affiliate=aff, offer=other_offer),
        "other_goal": make(affiliate=aff, offer=goal.offer, goal=other_goal),
        "inactive": make(affiliate=aff, is_active=False),
        "inactive_pending": make(affiliate=aff, is_active=False, fire_on_pending=True),
        "other_affiliate": make(),
        "other_affiliate_offer": make(offer=goal.offer, fire_on_pending=True),
    }


def _names(scoped, queryset) -> set[str]:
    by_pk = {postback.pk: name for name, postback in scoped.items()}
    return {by_pk[pk] for pk in queryset.values_list("pk", flat=True)}


def test_approved_fires_every_active_postback_in_scope(conversion, scoped):
    assert _names(scoped, outbound.postbacks_for_conversion(conversion)) == {
        "global",
        "offer",
        "goal",
        "global_pending",
        "goal_pending",
    }


def test_pending_fires_only_postbacks_that_asked_for_pending(conversion, scoped):
    conversion.status = ConversionStatus.PENDING
    assert _names(scoped, outbound.postbacks_for_conversion(conversion)) == {
        "global_pending",
        "goal_pending",
    }


@pytest.mark.parametrize("status", [ConversionStatus.REJECTED, ConversionStatus.REVERSED])
def test_rejected_and_reversed_fire_nothing(conversion, scoped, status):
    conversion.status = status
    assert list(outbound.postbacks_for_conversion(conversion)) == []


# --- macros ---------------------------------------------------------------------------------------


def test_macros(conversion, goal):
    click = conversion.click
    assert outbound.postback_macros(conversion) == {
        "click_id": click.click_id,
        "offer_id": goal.offer_id,
        "aff_id": conversion.affiliate_id,
        "sub1": "a b&c=d",
        "sub2": "",
        "sub3": "",
        "sub4": "",
        "sub5": "",
        "source_id": "",
        "aff_click_id": "their/1?x",
        "creative_id": "",
        "country": "GB",
        "ip": "81.2.69.160",
        "timestamp": int(conversion.created_at.timestamp()),
        "goal": "lead",
        "payout": "3.10",
        "currency": "USD",
        "conversion_id": conversion.pk,
        "status": "approved",
        "order_id": "A&B=1 /x",
        "sale_amount": "100.50",
    }


@pytest.mark.parametrize(
    "case",
    [
        # As read back from the numeric(14, 2) and numeric(16, 4) columns.
        ("USD", "3.10", "100.5000", "3.10", "100.50"),
        ("USD", "0.00", "0.0000", "0.00", "0.00"),
        ("USD", "7.00", "19.9900", "7.00", "19.99"),
        ("USD", "7.00", "19.9950", "7.00", "19.995"),
        ("USD", "7.00", "10.1234", "7.00", "10.1234"),
        ("EUR", "1000000.00", "1000000000.0000", "1000000.00", "1000000000.00"),
        ("JPY", "1005.00", "10055.0000", "1005", "10055"),
        ("JPY", "1006.00", "10055.5000", "1006", "10055.5"),
    ],
)
def test_amount_macros_use_the_currency_minor_unit(conversion, case):
    """case: currency, payout, sale amount, then the two macro values expected."""
    currency, payout, sale_amount, expected_payout, expected_sale = case
    conversion.currency = currency
    conversion.payout = Decimal(payout)
    conversion.sale_amount = Decimal(sale_amount)
    macros = outbound.postback_macros(conversion)
    assert (macros["payout"], macros["sale_amount"]) == (expected_payout, expected_sale)


def test_sale_amount_macro_is_empty_without_a_sale_amount(conversion):
    conversion.sale_amount = None
    assert outbound.postback_macros(conversion)["sale_amount"] == ""


# --- delivery against a real local receiver -------------------------------------------------------

TEMPLATE = (
    "/pb?cid={click_id}&tid={transaction_id}&aff={aff_click_id}&p={payout}&cur={currency}"
    "&g={goal}&st={status}&o={order_id}&sa={sale_amount}&conv={conversion_id}&s1={sub1}"
    "&x={unknown_macro}"
)


def test_success_is_logged_once(conversion, receiver):
    postback = _postback(conversion, receiver.url + TEMPLATE)

    delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)

    cid = conversion.click.click_id
    expected_path = (
        f"/pb?cid={cid}&tid={cid}&aff=their%2F1%3Fx&p=3.10&cur=USD&g=lead&st=approved"
        f"&o=A%26B%3D1%20%2Fx&sa=100.50&conv={conversion.pk}&s1=a%20b%26c%3Dd"
        "&x=%7Bunknown_macro%7D"
    )
    assert receiver.hits == [expected_path]
    assert delivery is not None
    delivery.refresh_from_db()
    assert delivery.conversion == conversion
    assert delivery.postback == postback
    # The log keeps the URL as rendered; on the wire non-URI characters are percent-encoded.
    assert delivery.url == receiver.url + expected_path.replace("%7B", "{").replace("%7D", "}")
    assert (delivery.attempt, delivery.http_status, delivery.succeeded) == (1, 200, True)
    assert (delivery.error, delivery.response_body) == ("", "ok")
    assert delivery.conversion_status == "approved"
    assert isinstance(delivery.latency_ms, int)
    assert 0 <= delivery.latency_ms < 5000

    # Delivered: the next call (a redelivered task, a second fan-out) does nothing at all.
    assert outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk) is None
    assert len(receiver.hits) == 1
    assert OutboundPostbackDelivery.objects.count() == 1


def test_response_body_is_cut_to_1024(conversion, receiver):
    receiver.body = b"y" * 5000
    postback = _postback(conversion, receiver.url + "/pb")
    delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    delivery.refresh_from_db()
    assert delivery.response_body == "y" * 1024
    assert delivery.succeeded is True


def test_response_body_with_nul_and_bad_utf8_is_stored(conversion, receiver):
    receiver.body = b"a\x00b\xffc"
    postback = _postback(conversion, receiver.url + "/pb")
    delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    delivery.refresh_from_db()
    assert delivery.response_body == "ab\ufffdc"


def test_failures_count_attempts_until_a_success(conversion, receiver):
    receiver.status = 500
    receiver.body = b"boom"
    postback = _postback(conversion, receiver.url + "/pb?c={click_id}")

    for _ in range(3):
        failed = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
        assert failed is not None
        assert failed.succeeded is False
    receiver.status = 200
    outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    assert outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk) is None

    assert _deliveries(conversion) == [
        (1, 500, False, "approved"),
        (2, 500, False, "approved"),
        (3, 500, False, "approved"),
        (4, 200, True, "approved"),
    ]
    assert OutboundPostbackDelivery.objects.filter(attempt=1).get().response_body == "boom"
    assert len(receiver.hits) == 4


@pytest.mark.parametrize("status", [204, 299])
def test_any_2xx_is_a_success(conversion, receiver, status):
    receiver.status = status
    receiver.body = b""
    postback = _postback(conversion, receiver.url + "/pb")
    delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    assert (delivery.http_status, delivery.succeeded) == (status, True)


@pytest.mark.parametrize("status", [301, 404, 429])
def test_non_2xx_is_a_failure(conversion, receiver, status):
    receiver.status = status
    postback = _postback(conversion, receiver.url + "/pb")
    delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    assert (delivery.http_status, delivery.succeeded) == (status, False)


def test_a_new_status_is_delivered_again(conversion, receiver):
    """Pending, then approved: the affiliate hears about each status once."""
    postback = _postback(conversion, receiver.url + "/pb?st={status}", fire_on_pending=True)
    conversion.status = ConversionStatus.PENDING
    conversion.save()
    outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    conversion.status = ConversionStatus.APPROVED
    conversion.save()
    outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)

    assert receiver.hits == ["/pb?st=pending", "/pb?st=approved"]
    assert _deliveries(conversion) == [(1, 200, True, "pending"), (1, 200, True, "approved")]


def test_loopback_is_refused_without_the_test_switch(conversion, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        postback = _postback(conversion, f"http://127.0.0.1:{listener.getsockname()[1]}/pb")

        delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)

        with pytest.raises(BlockingIOError):  # not even a TCP connection was made
            listener.accept()
    delivery.refresh_from_db()
    assert (delivery.error, delivery.http_status, delivery.succeeded) == (
        "refused: address_not_public",
        None,
        False,
    )
    assert (delivery.latency_ms, delivery.response_body, delivery.attempt) == (None, "", 1)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://localhost:9/pb", "refused: address_not_public"),
        ("http://127.1:9/pb", "refused: address_not_public"),
        ("http://2130706433:9/pb", "refused: address_not_public"),
        ("http://10.0.0.1/pb", "refused: address_not_public"),
        ("http://169.254.169.254/latest/meta-data/", "refused: address_not_public"),
        ("http://[::1]:9/pb", "refused: address_not_public"),
        ("http://[::ffff:10.0.0.1]/pb", "refused: address_not_public"),
        ("http://user:pw@tracker.example.net/pb", "refused: credentials_in_url"),
        ("ftp://tracker.example.net/pb", "refused: scheme_not_allowed"),
        ("http://tracker.invalid/pb", "refused: unresolvable_host"),
    ],
)
def test_unsafe_targets_are_refused(conversion, settings, url, error):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    postback = _postback(conversion, url)
    delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    assert (delivery.error, delivery.succeeded, delivery.http_status) == (error, False, None)


def test_connection_refused_is_a_logged_failure(conversion, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    postback = _postback(conversion, f"http://127.0.0.1:{port}/pb")
    delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    assert delivery.error.startswith("ConnectionRefusedError: ")
    assert (delivery.http_status, delivery.succeeded, delivery.attempt) == (None, False, 1)


def test_timeout_is_a_logged_failure(conversion, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.OUTBOUND_POSTBACK_TIMEOUT_SECONDS = 0.2
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        postback = _postback(conversion, f"http://127.0.0.1:{silent.getsockname()[1]}/pb")
        delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    assert delivery.error.startswith("TimeoutError: ")
    assert delivery.succeeded is False


def test_a_url_http_client_cannot_send_is_a_logged_failure(conversion, receiver):
    """Non-ASCII in the path made http.client raise UnicodeEncodeError out of the task: no row,
    no retry. Now it is an attempt like any other (or, once safe_http percent-encodes, a call)."""
    postback = _postback(conversion, receiver.url + "/pb/é?c={click_id}")
    delivery = outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    delivery.refresh_from_db()
    if delivery.succeeded:
        assert receiver.hits == [f"/pb/%C3%A9?c={conversion.click.click_id}"]
    else:
        assert delivery.error.startswith("UnicodeEncodeError: ")
        assert (delivery.attempt, receiver.hits) == (1, [])


def test_nothing_to_do_for_missing_rows(conversion, receiver):
    postback = _postback(conversion, receiver.url + "/pb")
    assert outbound.postback_deliver(conversion_id=10**9, postback_id=postback.pk) is None
    assert outbound.postback_deliver(conversion_id=conversion.pk, postback_id=10**9) is None
    assert OutboundPostbackDelivery.objects.count() == 0


def test_never_calls_another_affiliates_postback(conversion, receiver):
    theirs = factories.AffiliatePostbackFactory(url=receiver.url + "/theirs")
    assert outbound.postback_deliver(conversion_id=conversion.pk, postback_id=theirs.pk) is None
    assert receiver.hits == []
    assert OutboundPostbackDelivery.objects.count() == 0


def test_a_postback_switched_off_before_a_retry_is_not_called(conversion, receiver):
    receiver.status = 500
    postback = _postback(conversion, receiver.url + "/pb")
    outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    postback.is_active = False
    postback.save()
    assert outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk) is None
    assert len(receiver.hits) == 1
    assert _deliveries(conversion) == [(1, 500, False, "approved")]


def test_a_conversion_rejected_before_a_retry_is_not_announced(conversion, receiver):
    receiver.status = 500
    postback = _postback(conversion, receiver.url + "/pb?st={status}")
    outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk)
    conversion.status = ConversionStatus.REJECTED
    conversion.save()
    assert outbound.postback_deliver(conversion_id=conversion.pk, postback_id=postback.pk) is None
    assert receiver.hits == ["/pb?st=approved"]


# --- tasks ----------------------------------------------------------------------------------------


def test_deliver_task_retries_until_max_attempts(conversion, receiver, settings):
    settings.OUTBOUND_POSTBACK_MAX_ATTEMPTS = 3
    receiver.status = 503
    postback = _postback(conversion, receiver.url + "/pb")

    result = deliver_affiliate_postback.apply(args=[conversion.pk, postback.pk])

    # apply() runs each retry in-line (no countdown), so all attempts are made now.
    assert result.successful()
    assert _deliveries(conversion) == [
        (1, 503, False, "approved"),
        (2, 503, False, "approved"),
        (3, 503, False, "approved"),
    ]
    assert len(receiver.hits) == 3


def test_deliver_task_stops_at_the_first_success(conversion, receiver):
    postback = _postback(conversion, receiver.url + "/pb")
    deliver_affiliate_postback.apply(args=[conversion.pk, postback.pk])
    deliver_affiliate_postback.apply(args=[conversion.pk, postback.pk])
    assert _deliveries(conversion) == [(1, 200, True, "approved")]
    assert len(receiver.hits) == 1


def test_deliver_task_in_a_worker_asks_for_a_retry_with_backoff(conversion, receiver):
    """Called directly (as the worker's first run would be), a failure raises Retry."""
    receiver.status = 500
    postback = _postback(conversion, receiver.url + "/pb")
    with pytest.raises(Retry):
        deliver_affiliate_postback(conversion.pk, postback.pk)
    assert _deliveries(conversion) == [(1, 500, False, "approved")]


def test_retry_backoff_schedule():
    assert outbound.RETRY_BACKOFF_SECONDS == (5, 30, 120, 300, 900, 1800, 1800)
    assert max(outbound.RETRY_BACKOFF_SECONDS) < 3600  # under the broker visibility timeout


def test_deliver_task_drops_a_missing_conversion(receiver):
    result = deliver_affiliate_postback.apply(args=[10**9, 10**9])
    assert result.successful()
    assert OutboundPostbackDelivery.objects.count() == 0


def _queued(queue: str) -> list[tuple[str, list]]:
    """(task name, args) of the messages waiting on a queue of the real Redis broker."""
    messages = []
    for raw in reversed(redis_client().lrange(queue, 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages


def test_fan_out_queues_one_delivery_per_postback_in_scope(conversion, scoped):
    fire_affiliate_postbacks.apply(args=[conversion.pk])
    expected = sorted(scoped[name].pk for name in ("global", "offer", "goal"))
    expected += sorted(scoped[name].pk for name in ("global_pending", "goal_pending"))
    queued = _queued("postbacks")
    assert {name for name, _ in queued} == {"conversions.deliver_affiliate_postback"}
    assert sorted(args[1] for _, args in queued) == sorted(expected)
    assert {args[0] for _, args in queued} == {conversion.pk}


def test_fan_out_for_a_missing_conversion_queues_nothing(db):
    fire_affiliate_postbacks.apply(args=[10**9])
    assert redis_client().llen("postbacks") == 0
