"""Affiliate postbacks: which URLs a conversion fires, and one delivery attempt against a real
local HTTP server (the outbox's schedule, leases, pause and the rest: test_outbox*.py)."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.conversions import outbound
from apps.conversions.models import OutboundPostbackDelivery, OutboxState, PostbackOutbox
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


def _attempt(conversion, postback) -> OutboundPostbackDelivery | None:
    """What a worker does for this event: write its outbox row if the conversion's status calls
    for one, make the row due now, claim it and make one attempt."""
    outbound.outbox_write(conversion=conversion, now=timezone.now())
    rows = PostbackOutbox.objects.filter(
        conversion=conversion, postback=postback, state=OutboxState.PENDING
    )
    rows.update(next_attempt_at=timezone.now())
    claims = outbound.outbox_claim(
        now=timezone.now(), outbox_ids=list(rows.values_list("pk", flat=True))
    )
    assert len(claims) <= 1
    return outbound.outbox_deliver_claimed(claims[0]) if claims else None


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
        "global_reversal": make(affiliate=aff, fire_on_reversal=True),
        "goal_reversal": make(affiliate=aff, offer=goal.offer, goal=goal, fire_on_reversal=True),
        "other_goal_reversal": make(
            affiliate=aff, offer=goal.offer, goal=other_goal, fire_on_reversal=True
        ),
        "paused": make(affiliate=aff, paused_at=timezone.now(), pause_reason="failing"),
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
        "global_reversal",
        "goal_reversal",
        "paused",  # its rows are written held back, for the resume
    }


def test_pending_fires_only_postbacks_that_asked_for_pending(conversion, scoped):
    conversion.status = ConversionStatus.PENDING
    assert _names(scoped, outbound.postbacks_for_conversion(conversion)) == {
        "global_pending",
        "goal_pending",
    }


@pytest.mark.parametrize("status", [ConversionStatus.REJECTED, ConversionStatus.REVERSED])
def test_rejected_and_reversed_fire_only_postbacks_that_asked_for_reversals(
    conversion, scoped, status
):
    conversion.status = status
    assert _names(scoped, outbound.postbacks_for_conversion(conversion)) == {
        "global_reversal",
        "goal_reversal",
    }


def test_unknown_status_fires_nothing(conversion, scoped):
    conversion.status = "bogus"
    assert list(outbound.postbacks_for_conversion(conversion)) == []


def test_outbox_write_adds_one_row_per_postback_and_status_once(conversion, scoped):
    now = timezone.now()
    ids = outbound.outbox_write(conversion=conversion, now=now)
    again = outbound.outbox_write(conversion=conversion, now=now)  # a replay: ON CONFLICT

    assert again == []
    rows = PostbackOutbox.objects.filter(conversion=conversion)
    by_pk = {postback.pk: name for name, postback in scoped.items()}
    assert {by_pk[pk]: state for pk, state in rows.values_list("postback_id", "state")} == {
        "global": "pending",
        "offer": "pending",
        "goal": "pending",
        "global_pending": "pending",
        "goal_pending": "pending",
        "global_reversal": "pending",
        "goal_reversal": "pending",
        "paused": "cancelled",
    }
    assert sorted(ids) == sorted(rows.filter(state="pending").values_list("pk", flat=True))
    assert set(rows.values_list("conversion_status", "attempts")) == {("approved", 0)}
    assert set(rows.filter(state="pending").values_list("next_attempt_at", flat=True)) == {now}
    assert rows.get(state="cancelled").last_error == outbound.PAUSED_NOTE


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


# --- one attempt against a real local receiver ---------------------------------------------------

TEMPLATE = (
    "/pb?cid={click_id}&tid={transaction_id}&aff={aff_click_id}&p={payout}&cur={currency}"
    "&g={goal}&st={status}&o={order_id}&sa={sale_amount}&conv={conversion_id}&s1={sub1}"
    "&x={unknown_macro}"
)


def test_success_is_logged_once(conversion, receiver):
    postback = _postback(conversion, receiver.url + TEMPLATE)

    delivery = _attempt(conversion, postback)

    cid = conversion.click.click_id
    expected_path = (
        f"/pb?cid={cid}&tid={cid}&aff=their%2F1%3Fx&p=3.10&cur=USD&g=lead&st=approved"
        f"&o=A%26B%3D1%20%2Fx&sa=100.50&conv={conversion.pk}&s1=a%20b%26c%3Dd"
        "&x=%7Bunknown_macro%7D"
    )
    assert receiver.hits == [expected_path]
    assert delivery is not None
    delivery.refresh_from_db()
    row = PostbackOutbox.objects.get()
    assert (delivery.conversion, delivery.postback, delivery.outbox) == (conversion, postback, row)
    # The log keeps the URL as rendered; on the wire non-URI characters are percent-encoded.
    assert delivery.url == receiver.url + expected_path.replace("%7B", "{").replace("%7D", "}")
    assert (delivery.attempt, delivery.http_status, delivery.succeeded) == (1, 200, True)
    assert (delivery.error, delivery.response_body) == ("", "ok")
    assert (delivery.conversion_status, delivery.http_method, delivery.is_test) == (
        "approved",
        "GET",
        False,
    )
    assert isinstance(delivery.latency_ms, int)
    assert 0 <= delivery.latency_ms < 5000
    assert (row.state, row.attempts, row.next_attempt_at, row.last_error) == (
        "delivered",
        1,
        None,
        "",
    )
    assert row.delivered_at is not None

    # Delivered: the next run (a redelivered task, a second kick) finds nothing to do.
    assert _attempt(conversion, postback) is None
    assert len(receiver.hits) == 1
    assert OutboundPostbackDelivery.objects.count() == 1


def test_response_body_is_cut_to_1024(conversion, receiver):
    receiver.body = b"y" * 5000
    postback = _postback(conversion, receiver.url + "/pb")
    delivery = _attempt(conversion, postback)
    delivery.refresh_from_db()
    assert delivery.response_body == "y" * 1024
    assert delivery.succeeded is True


def test_response_body_with_nul_and_bad_utf8_is_stored(conversion, receiver):
    receiver.body = b"a\x00b\xffc"
    postback = _postback(conversion, receiver.url + "/pb")
    delivery = _attempt(conversion, postback)
    delivery.refresh_from_db()
    assert delivery.response_body == "ab\ufffdc"


def test_failures_count_attempts_until_a_success(conversion, receiver):
    receiver.status = 500
    receiver.body = b"boom"
    postback = _postback(conversion, receiver.url + "/pb?c={click_id}")

    for _ in range(3):
        failed = _attempt(conversion, postback)
        assert failed is not None
        assert failed.succeeded is False
    row = PostbackOutbox.objects.get()
    assert (row.state, row.attempts, row.last_error) == ("pending", 3, "HTTP 500")
    receiver.status = 200
    _attempt(conversion, postback)
    assert _attempt(conversion, postback) is None

    assert _deliveries(conversion) == [
        (1, 500, False, "approved"),
        (2, 500, False, "approved"),
        (3, 500, False, "approved"),
        (4, 200, True, "approved"),
    ]
    assert OutboundPostbackDelivery.objects.filter(attempt=1).get().response_body == "boom"
    assert len(receiver.hits) == 4
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error) == ("delivered", 4, "")


@pytest.mark.parametrize("status", [204, 299])
def test_any_2xx_is_a_success(conversion, receiver, status):
    receiver.status = status
    receiver.body = b""
    postback = _postback(conversion, receiver.url + "/pb")
    delivery = _attempt(conversion, postback)
    assert (delivery.http_status, delivery.succeeded) == (status, True)


@pytest.mark.parametrize("status", [301, 404, 429])
def test_non_2xx_is_a_failure(conversion, receiver, status):
    receiver.status = status
    postback = _postback(conversion, receiver.url + "/pb")
    delivery = _attempt(conversion, postback)
    assert (delivery.http_status, delivery.succeeded) == (status, False)
    assert PostbackOutbox.objects.get().state == "pending"


def test_a_new_status_is_delivered_again(conversion, receiver):
    """Pending, then approved: the affiliate hears about each status once."""
    postback = _postback(conversion, receiver.url + "/pb?st={status}", fire_on_pending=True)
    conversion.status = ConversionStatus.PENDING
    conversion.save()
    _attempt(conversion, postback)
    conversion.status = ConversionStatus.APPROVED
    conversion.save()
    _attempt(conversion, postback)
    _attempt(conversion, postback)

    assert receiver.hits == ["/pb?st=pending", "/pb?st=approved"]
    assert _deliveries(conversion) == [(1, 200, True, "pending"), (1, 200, True, "approved")]


def test_a_reversal_is_announced_to_postbacks_that_asked(conversion, receiver):
    postback = _postback(conversion, receiver.url + "/pb?st={status}", fire_on_reversal=True)
    silent = _postback(conversion, receiver.url + "/silent?st={status}")
    _attempt(conversion, postback)
    _attempt(conversion, silent)
    conversion.status = ConversionStatus.REVERSED
    conversion.save()
    _attempt(conversion, postback)
    assert _attempt(conversion, silent) is None
    assert receiver.hits == ["/pb?st=approved", "/silent?st=approved", "/pb?st=reversed"]


def test_loopback_is_refused_without_the_test_switch(conversion, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        postback = _postback(conversion, f"http://127.0.0.1:{listener.getsockname()[1]}/pb")

        delivery = _attempt(conversion, postback)

        with pytest.raises(BlockingIOError):  # not even a TCP connection was made
            listener.accept()
    delivery.refresh_from_db()
    assert (delivery.error, delivery.http_status, delivery.succeeded) == (
        "refused: address_not_public",
        None,
        False,
    )
    assert (delivery.latency_ms, delivery.response_body, delivery.attempt) == (None, "", 1)
    assert PostbackOutbox.objects.get().last_error == "refused: address_not_public"


# Saved URLs are checked by the API and the admin; these are checked again at every attempt
# (a row written before a rule existed, a URL edited in the database, DNS that changed).
UNSAFE_TARGETS = [
    ("http://localhost:9/pb", "refused: address_not_public"),
    ("http://127.1:9/pb", "refused: address_not_public"),
    ("http://2130706433:9/pb", "refused: address_not_public"),  # 127.0.0.1 as one number
    ("http://017700000001/pb", "refused: address_not_public"),  # ... in octal
    ("http://0x7f.1/pb", "refused: address_not_public"),  # ... in hex, short form
    ("http://10.0.0.1/pb", "refused: address_not_public"),
    ("http://172.16.0.1/pb", "refused: address_not_public"),
    ("http://192.168.1.1/pb", "refused: address_not_public"),
    ("http://100.64.0.1/pb", "refused: address_not_public"),  # CGNAT
    ("http://169.254.169.254/latest/meta-data/", "refused: address_not_public"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "refused: address_not_public"),  # AWS IPv6
    ("http://[fe80::1]/pb", "refused: address_not_public"),
    ("http://[::1]:9/pb", "refused: address_not_public"),
    ("http://[::ffff:10.0.0.1]/pb", "refused: address_not_public"),
    ("http://[::ffff:127.0.0.1]/pb", "refused: address_not_public"),
    ("http://[::ffff:169.254.169.254]/pb", "refused: address_not_public"),
    ("http://0.0.0.0/pb", "refused: address_not_public"),
    ("http://user:pw@tracker.example.net/pb", "refused: credentials_in_url"),
    ("http://tracker.example.net@127.0.0.1/pb", "refused: credentials_in_url"),
    ("ftp://tracker.example.net/pb", "refused: scheme_not_allowed"),
    ("file:///etc/passwd", "refused: scheme_not_allowed"),
    ("gopher://tracker.example.net/", "refused: scheme_not_allowed"),
    ("http://%31%32%37.0.0.1/pb", "refused: malformed_url"),
    ("http://tracker.invalid/pb", "refused: unresolvable_host"),
    ("http://93.184.215.14:25/pb", "refused: port_not_allowed"),  # never connected to
    ("https://93.184.215.14:10080/pb", "refused: port_not_allowed"),
]


@pytest.mark.parametrize(("url", "error"), UNSAFE_TARGETS)
def test_unsafe_targets_are_refused(conversion, settings, url, error):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    postback = _postback(conversion, url)
    delivery = _attempt(conversion, postback)
    assert (delivery.error, delivery.succeeded, delivery.http_status) == (error, False, None)


@pytest.fixture
def rebinding_resolver(monkeypatch):
    """DNS answering a public address first and loopback after, as a rebinding attacker's
    server would: the check on save sees the first answer, the call the second."""
    from apps.common import safe_http

    real = socket.getaddrinfo
    answers = [["93.184.215.14"], ["127.0.0.1"]]
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in address]

    monkeypatch.setattr(safe_http.socket, "getaddrinfo", getaddrinfo)
    return lookups


def test_dns_rebinding_between_save_and_call_is_refused(
    conversion, settings, rebinding_resolver, affiliate_client, goal
):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    created = affiliate_client.post(
        "/api/v1/affiliate/postbacks/", {"url": "http://rebind.test/pb"}, format="json"
    )
    assert created.status_code == 201, created.json()  # public when saved
    postback = conversion.affiliate.postbacks.get(pk=created.json()["id"])

    delivery = _attempt(conversion, postback)

    assert (delivery.error, delivery.http_status) == ("refused: address_not_public", None)
    assert rebinding_resolver == ["rebind.test", "rebind.test"]  # checked again at the call


def test_connection_refused_is_a_logged_failure(conversion, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    postback = _postback(conversion, f"http://127.0.0.1:{port}/pb")
    delivery = _attempt(conversion, postback)
    assert delivery.error.startswith("ConnectionRefusedError: ")
    assert (delivery.http_status, delivery.succeeded, delivery.attempt) == (None, False, 1)


def test_timeout_is_a_logged_failure(conversion, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.OUTBOUND_POSTBACK_TIMEOUT_SECONDS = 0.2
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        postback = _postback(conversion, f"http://127.0.0.1:{silent.getsockname()[1]}/pb")
        delivery = _attempt(conversion, postback)
    assert delivery.error.startswith("TimeoutError: ")
    assert delivery.succeeded is False


def test_a_non_ascii_url_is_percent_encoded_on_the_wire(conversion, receiver):
    postback = _postback(conversion, receiver.url + "/pb/é?c={click_id}")
    delivery = _attempt(conversion, postback)
    delivery.refresh_from_db()
    assert delivery.succeeded
    assert receiver.hits == [f"/pb/%C3%A9?c={conversion.click.click_id}"]


def test_never_calls_another_affiliates_postback(conversion, receiver):
    theirs = factories.AffiliatePostbackFactory(url=receiver.url + "/theirs")
    assert _attempt(conversion, theirs) is None
    assert receiver.hits == []
    assert PostbackOutbox.objects.count() == 0
    assert OutboundPostbackDelivery.objects.count() == 0


def test_a_postback_switched_off_before_a_retry_is_not_called(conversion, receiver):
    receiver.status = 500
    postback = _postback(conversion, receiver.url + "/pb")
    _attempt(conversion, postback)
    postback.is_active = False
    postback.save()
    assert _attempt(conversion, postback) is None
    assert len(receiver.hits) == 1
    assert _deliveries(conversion) == [(1, 500, False, "approved")]
    row = PostbackOutbox.objects.get()
    assert (row.state, row.attempts, row.last_error) == ("cancelled", 1, "postback switched off")


def test_a_conversion_rejected_before_a_retry_is_not_announced(conversion, receiver):
    receiver.status = 500
    postback = _postback(conversion, receiver.url + "/pb?st={status}")
    _attempt(conversion, postback)
    conversion.status = ConversionStatus.REJECTED
    conversion.save()
    assert _attempt(conversion, postback) is None
    assert receiver.hits == ["/pb?st=approved"]
    row = PostbackOutbox.objects.get()
    assert (row.state, row.last_error) == (
        "cancelled",
        "superseded: the conversion is now rejected",
    )
