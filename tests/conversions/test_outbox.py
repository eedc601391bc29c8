"""The postback outbox: rows written with the conversion, leases, the retry schedule, POST bodies,
signatures, pausing, resending, backfill, test fires, log retention, and the tasks around them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from base64 import b64decode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.common.redis import redis_client
from apps.conversions import outbound, side_effects, tasks
from apps.conversions.models import (
    SETTLED_OUTBOX_STATES,
    Conversion,
    InboundPostbackLog,
    OutboundPostbackDelivery,
    PostbackOutbox,
)
from apps.offers.models import ConversionStatus
from apps.partners.models import AffiliatePostback, AffiliateSigningKey
from apps.partners.services import (
    signing_key_create,
    signing_key_rotate,
    signing_secrets_active,
)
from tests import factories

pytestmark = pytest.mark.django_db

PUBLISHED_BACKOFF = [5, 300, 1800, 7200, 18000, 36000, 36000]


# --- a receiver that records everything ---------------------------------------------------------


@dataclass
class Tracker:
    """The affiliate's tracker: answers the next of `statuses` (then the last one again), after
    `delay` seconds, and records each request."""

    url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]


@pytest.fixture
def tracker(settings) -> Iterator[Tracker]:
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    state = Tracker()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with lock:
                state.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                status = state.statuses.pop(0) if len(state.statuses) > 1 else state.statuses[0]
            time.sleep(state.delay)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def conversion(goal, affiliate):
    click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate, sub1="s 1")
    return factories.ConversionFactory(
        click=click, goal=goal, order_id="O-1", payout=Decimal("3.10"), sale_amount=None
    )


def _postback(conversion, url: str, **kwargs) -> AffiliatePostback:
    return factories.AffiliatePostbackFactory(affiliate=conversion.affiliate, url=url, **kwargs)


def _write(conversion) -> list[int]:
    return outbound.outbox_write(conversion=conversion, now=timezone.now())


def _row(**filters) -> PostbackOutbox:
    return PostbackOutbox.objects.get(**filters)


def _make_due(row_id: int) -> None:
    PostbackOutbox.objects.filter(pk=row_id).update(next_attempt_at=timezone.now())


def _queued(queue: str) -> list[tuple[str, list]]:
    """(task name, args) of the messages waiting on a queue of the real Redis broker."""
    messages = []
    for raw in reversed(redis_client().lrange(queue, 0, -1)):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(b64decode(message["body"]))
        messages.append((message["headers"]["task"], args))
    return messages


# --- written with the conversion, kicked after commit ------------------------------------------


def test_conversion_changed_writes_rows_and_kicks_them_after_commit(
    conversion, django_capture_on_commit_callbacks
):
    postback = _postback(conversion, "https://tracker.example.net/pb")
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        side_effects.conversion_changed(conversion)
        row = _row()
        assert _queued("postbacks") == []  # nothing is sent before the commit
    assert (row.postback, row.conversion_status, row.state) == (postback, "approved", "pending")
    assert _queued("postbacks") == [("conversions.deliver_outbox", [[row.pk]])]
    assert _queued("commissions") == []  # the accrual queue table and its beat job do that


def test_conversion_changed_rolls_back_with_the_change(conversion):
    _postback(conversion, "https://tracker.example.net/pb")
    with pytest.raises(RuntimeError), transaction.atomic():
        side_effects.conversion_changed(conversion)
        raise RuntimeError("the status change failed")
    assert PostbackOutbox.objects.count() == 0


def test_without_postbacks_nothing_is_sent_to_the_broker(
    conversion, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        side_effects.conversion_changed(conversion)
    assert (_queued("postbacks"), _queued("commissions")) == ([], [])


def test_a_broker_outage_does_not_fail_the_caller(
    conversion, django_capture_on_commit_callbacks, monkeypatch
):
    _postback(conversion, "https://tracker.example.net/pb")

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver_outbox, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        side_effects.conversion_changed(conversion)
    assert _row().state == "pending"  # the beat job delivers it


def test_status_change_through_the_service_writes_the_reversal_row(conversion):
    from apps.conversions.models import StatusChangeSource
    from apps.conversions.status import conversion_reverse

    postback = _postback(conversion, "https://tracker.example.net/pb", fire_on_reversal=True)
    conversion_reverse(
        conversion_id=conversion.pk, source=StatusChangeSource.ADMIN, now=timezone.now()
    )
    assert list(
        PostbackOutbox.objects.filter(postback=postback).values_list("conversion_status", "state")
    ) == [("reversed", "pending")]


# --- claims and leases --------------------------------------------------------------------------


def test_a_claim_leases_the_row_until_the_calls_can_no_longer_be_running(conversion, settings):
    settings.OUTBOUND_POSTBACK_TIMEOUT_SECONDS = 5
    _postback(conversion, "https://tracker.example.net/pb")
    [row_id] = _write(conversion)
    now = timezone.now()

    [claim] = outbound.outbox_claim(now=now)

    lease = timedelta(seconds=2 * 5 + outbound.LEASE_MARGIN_SECONDS)
    assert (claim.outbox_id, claim.attempts, claim.lease_until) == (row_id, 1, now + lease)
    row = _row()
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 1, now + lease)
    # Claimed: nobody else gets it while the lease runs.
    assert outbound.outbox_claim(now=now + lease - timedelta(seconds=1)) == []


def test_a_worker_killed_mid_attempt_leaves_a_row_that_comes_due_again(conversion, tracker):
    """The claim is committed before the call; the worker dies without writing a result. When
    the lease runs out the row is claimed again, and delivered once."""
    _postback(conversion, tracker.url + "/pb")
    _write(conversion)
    [dead] = outbound.outbox_claim(now=timezone.now())  # ... and the worker is SIGKILLed here

    assert outbound.outbox_claim(now=timezone.now()) == []
    later = dead.lease_until + timedelta(seconds=1)
    [retry] = outbound.outbox_claim(now=later)
    assert (retry.outbox_id, retry.attempts) == (dead.outbox_id, 2)

    delivery = outbound.outbox_deliver_claimed(retry)
    assert (delivery.attempt, delivery.succeeded) == (2, True)
    # The dead worker's claim is stale: were it to come back, it would not call again.
    assert outbound.outbox_deliver_claimed(dead) is None
    assert tracker.paths == ["/pb"]
    assert _row().state == "delivered"


def test_a_holder_whose_lease_was_taken_over_mid_call_only_logs(conversion, tracker, monkeypatch):
    """A's call outlives its lease (a stalled worker); B claims the row. A's failure must not
    reschedule B's row, and A's attempt is still in the log."""
    tracker.statuses = [500]
    _postback(conversion, tracker.url + "/pb")
    _write(conversion)
    [claim_a] = outbound.outbox_claim(now=timezone.now())
    real_attempt = outbound._attempt
    taken_over: list[outbound.Claim] = []

    def stalled(call):
        result = real_attempt(call)
        taken_over.extend(outbound.outbox_claim(now=claim_a.lease_until + timedelta(seconds=1)))
        return result

    monkeypatch.setattr(outbound, "_attempt", stalled)
    delivery_a = outbound.outbox_deliver_claimed(claim_a)

    [claim_b] = taken_over
    row = _row()
    assert delivery_a.succeeded is False
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 2, claim_b.lease_until)
    assert row.last_error == ""  # B's lease, untouched by A's result


def test_a_success_from_a_taken_over_holder_still_delivers_the_row(
    conversion, tracker, monkeypatch
):
    _postback(conversion, tracker.url + "/pb")
    _write(conversion)
    [claim_a] = outbound.outbox_claim(now=timezone.now())
    real_attempt = outbound._attempt
    taken_over: list[outbound.Claim] = []

    def stalled(call):
        result = real_attempt(call)
        taken_over.extend(outbound.outbox_claim(now=claim_a.lease_until + timedelta(seconds=1)))
        return result

    monkeypatch.setattr(outbound, "_attempt", stalled)
    assert outbound.outbox_deliver_claimed(claim_a).succeeded is True
    monkeypatch.setattr(outbound, "_attempt", real_attempt)
    # B, woken up, finds the row delivered and makes no call.
    assert outbound.outbox_deliver_claimed(taken_over[0]) is None
    assert (_row().state, len(tracker.requests)) == ("delivered", 1)


def test_a_claim_overtaken_by_a_staff_requeue_and_a_new_claim_makes_no_call(conversion, tracker):
    """A claims and stalls past its lease; staff ask for the row again (attempts back to 0) and
    B claims it, at A's attempt number. A, getting to the row late, must see that the lease is
    no longer its own."""
    _postback(conversion, tracker.url + "/pb")
    [row_id] = _write(conversion)
    [claim_a] = outbound.outbox_claim(now=timezone.now())
    outbound._requeue([row_id], now=claim_a.lease_until + timedelta(seconds=1))
    [claim_b] = outbound.outbox_claim(now=claim_a.lease_until + timedelta(seconds=2))
    assert claim_a.attempts == claim_b.attempts == 1

    assert outbound.outbox_deliver_claimed(claim_a) is None
    assert tracker.paths == []
    assert outbound.outbox_deliver_claimed(claim_b).succeeded is True
    assert tracker.paths == ["/pb"]


def _claimed_with_meanwhile(
    conversion, tracker, monkeypatch, meanwhile: Callable[[int], None]
) -> tuple[int, outbound.Claim]:
    """A row for the tracker's /pb, claimed; its first call runs `meanwhile(row_id)` just
    before it goes out (what happens while the call is out). Later calls are plain."""
    _postback(conversion, tracker.url + "/pb")
    [row_id] = _write(conversion)
    [claim] = outbound.outbox_claim(now=timezone.now())
    real_attempt = outbound._attempt

    def attempt(call):
        monkeypatch.setattr(outbound, "_attempt", real_attempt)
        meanwhile(row_id)
        return real_attempt(call)

    monkeypatch.setattr(outbound, "_attempt", attempt)
    return row_id, claim


def test_a_resend_asked_for_while_the_call_is_out_makes_no_second_call(
    conversion, tracker, monkeypatch
):
    """Staff (or the affiliate) ask for the event again while a worker is calling: the row is
    left to that call, so no second worker can claim it and call again meanwhile."""
    during_the_call: list[object] = []

    def asked_meanwhile(row_id: int) -> None:
        during_the_call.append(outbound.outbox_resend(outbox_ids=[row_id], now=timezone.now()))
        during_the_call.append(outbound.outbox_claim(now=timezone.now() + timedelta(seconds=1)))

    _, claim_a = _claimed_with_meanwhile(conversion, tracker, monkeypatch, asked_meanwhile)
    assert outbound.outbox_deliver_claimed(claim_a).succeeded is True
    resend, claims = during_the_call
    assert (resend.queued, claims) == (1, [])
    assert (_row().state, tracker.paths) == ("delivered", ["/pb"])


def test_a_resend_during_the_last_attempt_still_goes_out_when_that_call_fails(
    conversion, tracker, settings, monkeypatch
):
    """Asked for during the row's last attempt, which then fails: the resend's fresh attempts
    still apply, from the end of that call's lease (not given up on, not silently dropped)."""
    settings.OUTBOUND_POSTBACK_MAX_ATTEMPTS = 1
    tracker.statuses = [500, 200]

    def asked_meanwhile(row_id: int) -> None:
        assert outbound.outbox_resend(outbox_ids=[row_id], now=timezone.now()).queued == 1

    _, claim = _claimed_with_meanwhile(conversion, tracker, monkeypatch, asked_meanwhile)
    assert outbound.outbox_deliver_claimed(claim).succeeded is False
    row = _row()
    assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 0, claim.lease_until)
    [again] = outbound.outbox_claim(now=claim.lease_until + timedelta(seconds=1))
    assert outbound.outbox_deliver_claimed(again).succeeded is True
    assert (_row().state, tracker.paths) == ("delivered", ["/pb", "/pb"])


def test_a_row_cancelled_mid_call_and_resent_waits_for_that_call(conversion, tracker, monkeypatch):
    """Staff cancel a row while its call is out, then ask for it again: it is due when that
    call's lease ends, not at once beside it."""
    claims_meanwhile: list[object] = []

    def cancelled_and_resent(row_id: int) -> None:
        now = timezone.now()
        assert outbound.outbox_cancel(outbox_ids=[row_id], now=now) == 1
        outbound.outbox_resend(outbox_ids=[row_id], now=now)
        claims_meanwhile.extend(outbound.outbox_claim(now=now + timedelta(seconds=1)))

    _, claim = _claimed_with_meanwhile(conversion, tracker, monkeypatch, cancelled_and_resent)
    assert outbound.outbox_deliver_claimed(claim).succeeded is True
    assert (claims_meanwhile, _row().state, tracker.paths) == ([], "delivered", ["/pb"])


def test_a_resend_after_a_failed_call_is_due_at_once(conversion, tracker):
    """The lease ends with the result: a row that failed and waits for its retry is requeued."""
    tracker.statuses = [500]
    _postback(conversion, tracker.url + "/pb")
    [row_id] = _write(conversion)
    [claim] = outbound.outbox_claim(now=timezone.now())
    assert outbound.outbox_deliver_claimed(claim).succeeded is False
    now = timezone.now()
    assert _row().next_attempt_at > now
    outbound.outbox_resend(outbox_ids=[row_id], now=now)
    assert (_row().attempts, _row().next_attempt_at) == (0, now)


def test_a_status_line_with_a_nul_byte_is_a_logged_failure(conversion, settings):
    """The receiver's bytes end up in the error text: stored cleaned, the row rescheduled."""
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_nul() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"\x00\r\n")

    server = threading.Thread(target=answer_nul, daemon=True)
    server.start()
    with listener:
        _postback(conversion, f"http://127.0.0.1:{listener.getsockname()[1]}/pb")
        _write(conversion)
        assert outbound.outbox_deliver_due() == 1
    server.join(5)

    delivery = OutboundPostbackDelivery.objects.get()
    assert delivery.error.startswith("BadStatusLine")
    assert "\x00" not in delivery.error
    row = _row()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > timezone.now()


def test_an_attempt_that_breaks_in_our_code_keeps_to_the_schedule_and_spares_the_batch(
    conversion, tracker, monkeypatch, settings
):
    settings.OUTBOUND_POSTBACK_MAX_ATTEMPTS = 2
    broken = _postback(conversion, tracker.url + "/broken")
    _postback(conversion, tracker.url + "/fine")
    real_build = outbound._call_build

    def build(postback, *args, **kwargs):
        if postback.pk == broken.pk:
            raise RuntimeError("a bug")
        return real_build(postback, *args, **kwargs)

    monkeypatch.setattr(outbound, "_call_build", build)
    _write(conversion)

    assert outbound.outbox_deliver_due() == 2
    assert tracker.paths == ["/fine"]  # the other row of the batch went out at once
    row = _row(postback=broken)
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "internal error (logged)")
    assert row.next_attempt_at > timezone.now()  # on the schedule, not after the lease

    _make_due(row.pk)
    outbound.outbox_deliver_due()
    row = _row(postback=broken)
    assert (row.state, row.attempts, row.next_attempt_at) == ("failed", 2, None)


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_deliver_each_event_once(affiliate, goal, tracker):
    """SKIP LOCKED: concurrent runs share the due rows out; no event is called twice."""
    tracker.delay = 0.2
    postback = factories.AffiliatePostbackFactory(affiliate=affiliate, url=tracker.url + "/pb")
    for n in range(6):
        click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate)
        outbound.outbox_write(
            conversion=factories.ConversionFactory(click=click, goal=goal, order_id=f"o{n}"),
            now=timezone.now(),
        )
    results: list[int] = []

    def worker() -> None:
        try:
            results.append(outbound.outbox_deliver_due())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(results) == 6
    assert len(tracker.requests) == 6
    assert set(PostbackOutbox.objects.values_list("state", "attempts")) == {("delivered", 1)}
    successes = OutboundPostbackDelivery.objects.filter(postback=postback, succeeded=True)
    assert successes.count() == 6
    assert len(set(successes.values_list("conversion_id", flat=True))) == 6


# --- the retry schedule -------------------------------------------------------------------------


@pytest.mark.parametrize("attempts_done", range(1, 8))
def test_a_failure_is_retried_on_the_published_schedule_with_at_most_10pc_jitter(
    conversion, tracker, settings, attempts_done
):
    assert settings.OUTBOUND_POSTBACK_BACKOFF_SECONDS == PUBLISHED_BACKOFF
    tracker.statuses = [503]
    _postback(conversion, tracker.url + "/pb")
    [row_id] = _write(conversion)
    PostbackOutbox.objects.filter(pk=row_id).update(attempts=attempts_done - 1)
    [claim] = outbound.outbox_claim(now=timezone.now())

    before = timezone.now()
    outbound.outbox_deliver_claimed(claim)
    after = timezone.now()

    row = _row()
    base = timedelta(seconds=PUBLISHED_BACKOFF[attempts_done - 1])
    assert (row.state, row.attempts, row.last_error) == ("pending", attempts_done, "HTTP 503")
    assert before + base <= row.next_attempt_at <= after + base * 1.1


def test_the_last_attempt_gives_up(conversion, tracker, settings):
    assert settings.OUTBOUND_POSTBACK_MAX_ATTEMPTS == 8
    tracker.statuses = [500]
    _postback(conversion, tracker.url + "/pb")
    [row_id] = _write(conversion)
    for _ in range(8):
        _make_due(row_id)
        [claim] = outbound.outbox_claim(now=timezone.now())
        outbound.outbox_deliver_claimed(claim)
    row = _row()
    assert (row.state, row.attempts, row.next_attempt_at) == ("failed", 8, None)
    assert outbound.outbox_claim(now=timezone.now() + timedelta(days=365)) == []
    assert list(
        OutboundPostbackDelivery.objects.order_by("id").values_list("attempt", flat=True)
    ) == list(range(1, 9))


def test_first_attempt_is_immediate_then_retries_wait(conversion, tracker):
    tracker.statuses = [500, 200]
    _postback(conversion, tracker.url + "/pb")
    [row_id] = _write(conversion)
    assert outbound.outbox_deliver_due(outbox_ids=[row_id]) == 1
    assert outbound.outbox_deliver_due() == 0  # the retry is 5 s away
    _make_due(row_id)
    assert outbound.outbox_deliver_due() == 1
    assert (_row().state, len(tracker.requests)) == ("delivered", 2)


# --- POST and signatures ------------------------------------------------------------------------


def test_post_sends_the_macros_as_json(conversion, tracker):
    postback = _postback(conversion, tracker.url + "/pb?cid={click_id}", http_method="POST")
    [row_id] = _write(conversion)
    outbound.outbox_deliver_due(outbox_ids=[row_id])

    [request] = tracker.requests
    assert (request["method"], request["path"]) == ("POST", f"/pb?cid={conversion.click_id}")
    assert request["headers"]["content-type"] == "application/json"
    assert "webhook-signature" not in request["headers"]  # sign is off
    assert json.loads(request["body"]) == {
        "click_id": conversion.click_id,
        "offer_id": conversion.offer_id,
        "aff_id": conversion.affiliate_id,
        "sub1": "s 1",
        "sub2": "",
        "sub3": "",
        "sub4": "",
        "sub5": "",
        "source_id": "",
        "aff_click_id": "",
        "creative_id": "",
        "country": "GB",
        "ip": "81.2.69.160",
        "timestamp": int(conversion.created_at.timestamp()),
        "goal": "lead",
        "payout": "3.10",
        "currency": "USD",
        "conversion_id": conversion.pk,
        "status": "approved",
        "order_id": "O-1",
        "sale_amount": "",
    }
    delivery = OutboundPostbackDelivery.objects.get()
    assert (delivery.http_method, delivery.succeeded, delivery.postback) == ("POST", True, postback)


def _standard_webhooks_verify(secret: str, headers: dict[str, str], payload: bytes) -> bool:
    """What a Standard Webhooks receiver does (written here from the spec, not with our code):
    the key is the base64 after "whsec_"; the content is "{id}.{timestamp}.{payload}"; any one
    "v1,<base64>" among the space-separated signatures may match."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + payload
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(signature.split(",", 1)[1], expected)
        for signature in headers["webhook-signature"].split(" ")
        if signature.startswith("v1,")
    )


def test_signed_post_verifies_like_a_standard_webhooks_receiver(conversion, tracker):
    secret = signing_key_create(affiliate=conversion.affiliate)
    other = signing_key_create(affiliate=factories.AffiliateFactory())
    _postback(conversion, tracker.url + "/pb", http_method="POST", sign=True)
    [row_id] = _write(conversion)
    before = int(time.time())
    outbound.outbox_deliver_due(outbox_ids=[row_id])

    [request] = tracker.requests
    headers = request["headers"]
    assert headers["webhook-id"] == f"msg_{row_id}"
    assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
    assert len(headers["webhook-signature"].split(" ")) == 1
    assert _standard_webhooks_verify(secret, headers, request["body"])
    assert not _standard_webhooks_verify(other, headers, request["body"])
    assert not _standard_webhooks_verify(secret, headers, request["body"] + b" ")


def test_signed_get_signs_the_request_target(conversion, tracker):
    secret = signing_key_create(affiliate=conversion.affiliate)
    _postback(conversion, tracker.url + "/pb?cid={click_id}&s={sub1}", sign=True)
    outbound.outbox_deliver_due(outbox_ids=_write(conversion))
    [request] = tracker.requests
    assert request["path"] == f"/pb?cid={conversion.click_id}&s=s%201"
    assert _standard_webhooks_verify(secret, request["headers"], request["path"].encode())
    tampered = request["path"].replace("s%201", "s%202").encode()
    assert not _standard_webhooks_verify(secret, request["headers"], tampered)


def test_retries_keep_the_webhook_id(conversion, tracker):
    signing_key_create(affiliate=conversion.affiliate)
    tracker.statuses = [500, 200]
    _postback(conversion, tracker.url + "/pb", sign=True)
    [row_id] = _write(conversion)
    outbound.outbox_deliver_due(outbox_ids=[row_id])
    _make_due(row_id)
    outbound.outbox_deliver_due(outbox_ids=[row_id])
    assert [r["headers"]["webhook-id"] for r in tracker.requests] == [f"msg_{row_id}"] * 2


def test_rotation_signs_with_the_new_and_the_old_key_until_the_old_expires(
    conversion, tracker, time_machine
):
    old = signing_key_create(affiliate=conversion.affiliate)
    new = signing_key_rotate(affiliate=conversion.affiliate, overlap_hours=24)
    postback = _postback(conversion, tracker.url + "/pb", http_method="POST", sign=True)
    [row_id] = _write(conversion)
    outbound.outbox_deliver_due(outbox_ids=[row_id])
    first = tracker.requests[0]
    assert len(first["headers"]["webhook-signature"].split(" ")) == 2
    assert _standard_webhooks_verify(old, first["headers"], first["body"])
    assert _standard_webhooks_verify(new, first["headers"], first["body"])

    time_machine.move_to(timezone.now() + timedelta(hours=25))
    outbound.postback_test_fire(postback_id=postback.pk, now=timezone.now())
    second = tracker.requests[1]
    assert len(second["headers"]["webhook-signature"].split(" ")) == 1
    assert _standard_webhooks_verify(new, second["headers"], second["body"])
    assert not _standard_webhooks_verify(old, second["headers"], second["body"])


def test_sign_without_a_key_sends_unsigned(conversion, tracker):
    _postback(conversion, tracker.url + "/pb", sign=True)
    outbound.outbox_deliver_due(outbox_ids=_write(conversion))
    assert "webhook-signature" not in tracker.requests[0]["headers"]


def test_signing_keys_are_encrypted_shown_once_and_expire_on_rotation(affiliate):
    now = timezone.now()
    first = signing_key_create(affiliate=affiliate)
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    key = AffiliateSigningKey.objects.get()
    assert (key.prefix, key.expires_at) == (first[:12], None)
    assert first not in key.secret_encrypted

    second = signing_key_rotate(affiliate=affiliate, overlap_hours=24, now=now)
    assert second != first
    key.refresh_from_db()
    assert key.expires_at == now + timedelta(hours=24)
    assert signing_secrets_active(affiliate_id=affiliate.pk, now=now) == [second, first]
    assert signing_secrets_active(affiliate_id=affiliate.pk, now=now + timedelta(hours=25)) == [
        second
    ]
    # A second rotation does not extend a key already on its way out.
    signing_key_rotate(affiliate=affiliate, overlap_hours=48, now=now)
    key.refresh_from_db()
    assert key.expires_at == now + timedelta(hours=24)


# --- pausing a postback that keeps failing --------------------------------------------------------


def _log(
    postback, conversion, *, succeeded: bool, hours_ago: float, outbox_id: int | None = None
) -> None:
    delivery = OutboundPostbackDelivery.objects.create(
        conversion=conversion,
        outbox_id=outbox_id,
        postback=postback,
        conversion_status="approved",
        attempt=1,
        url=postback.url,
        succeeded=succeeded,
        http_status=200 if succeeded else 500,
    )
    OutboundPostbackDelivery.objects.filter(pk=delivery.pk).update(
        created_at=timezone.now() - timedelta(hours=hours_ago)
    )


@pytest.fixture
def failing(conversion):
    """A postback with a row being retried, and a conversion to log attempts against."""
    postback = _postback(conversion, "https://tracker.example.net/pb")
    [row_id] = _write(conversion)
    PostbackOutbox.objects.filter(pk=row_id).update(attempts=3, last_error="HTTP 500")
    return postback


def test_failing_for_the_whole_window_pauses_and_holds_rows_back(conversion, failing):
    _log(failing, conversion, succeeded=True, hours_ago=100)
    _log(failing, conversion, succeeded=False, hours_ago=73)
    _log(failing, conversion, succeeded=False, hours_ago=1)

    assert outbound.postbacks_pause_failing(now=timezone.now()) == [failing.pk]

    failing.refresh_from_db()
    assert failing.paused_at is not None
    assert failing.pause_reason.startswith("No successful delivery since ")
    row = _row()
    assert (row.state, row.next_attempt_at) == ("cancelled", None)
    assert row.last_error == outbound.PAUSED_NOTE + "HTTP 500"
    assert outbound.postbacks_pause_failing(now=timezone.now()) == []  # once


@pytest.mark.parametrize(
    "history",
    [
        [(True, 100), (False, 71), (False, 1)],  # failing for 71 h only
        [(False, 100), (True, 10), (False, 1)],  # a success inside the window
        [(False, 100), (True, 0.5)],  # the last attempt worked
    ],
)
def test_not_paused_without_72_hours_of_failures(conversion, failing, history):
    for succeeded, hours_ago in history:
        _log(failing, conversion, succeeded=succeeded, hours_ago=hours_ago)
    assert outbound.postbacks_pause_failing(now=timezone.now()) == []
    failing.refresh_from_db()
    assert failing.paused_at is None


def test_test_fires_do_not_count_toward_a_pause(conversion, failing):
    _log(failing, conversion, succeeded=False, hours_ago=80)
    OutboundPostbackDelivery.objects.update(is_test=True, conversion=None)
    assert outbound.postbacks_pause_failing(now=timezone.now()) == []


def test_a_paused_postback_is_not_called_and_resume_requeues_what_was_held(
    conversion, tracker, goal, django_capture_on_commit_callbacks
):
    postback = _postback(conversion, tracker.url + "/pb")
    [held] = _write(conversion)
    outbound.postback_pause(postback_id=postback.pk, reason="failing", now=timezone.now())
    # A conversion while paused is written held back too.
    click = factories.ClickFactory(offer=goal.offer, affiliate=conversion.affiliate)
    later = factories.ConversionFactory(click=click, goal=goal, order_id="O-2")
    assert _write(later) == []
    assert outbound.outbox_deliver_due() == 0
    assert tracker.requests == []

    with django_capture_on_commit_callbacks(execute=True):
        assert outbound.postback_resume(postback_id=postback.pk, now=timezone.now()) == 2

    postback.refresh_from_db()
    assert (postback.paused_at, postback.pause_reason) == (None, "")
    rows = PostbackOutbox.objects.order_by("id")
    assert list(rows.values_list("state", "attempts", "last_error")) == [("pending", 0, "")] * 2
    [(name, [ids])] = _queued("postbacks")
    assert (name, sorted(ids)) == (
        "conversions.deliver_outbox",
        sorted(rows.values_list("pk", flat=True)),
    )
    assert held in ids
    assert outbound.outbox_deliver_due() == 2
    assert len(tracker.requests) == 2


def test_resume_also_requeues_rows_given_up_on_in_the_failing_run(conversion, failing, goal):
    """A row runs out of attempts in about a day; the pause comes after 72 hours of failures.
    The events of the first days of the run were given up on, not held back: the resume sends
    them too, but not what was given up on before the run began (that URL answered since)."""
    before_run = factories.ConversionFactory(
        click=factories.ClickFactory(offer=goal.offer, affiliate=conversion.affiliate),
        goal=goal,
        order_id="O-old",
    )
    [old_row] = _write(before_run)
    PostbackOutbox.objects.filter(pk=old_row).update(
        state="failed", updated_at=timezone.now() - timedelta(hours=120)
    )
    _log(failing, conversion, succeeded=True, hours_ago=110)
    _log(failing, conversion, succeeded=False, hours_ago=80)
    given_up = PostbackOutbox.objects.get(conversion=conversion)
    PostbackOutbox.objects.filter(pk=given_up.pk).update(
        state="failed", next_attempt_at=None, updated_at=timezone.now() - timedelta(hours=50)
    )
    recent = factories.ConversionFactory(
        click=factories.ClickFactory(offer=goal.offer, affiliate=conversion.affiliate),
        goal=goal,
        order_id="O-recent",
    )
    [retrying] = _write(recent)
    PostbackOutbox.objects.filter(pk=retrying).update(attempts=2, last_error="HTTP 500")
    assert outbound.postbacks_pause_failing(now=timezone.now()) == [failing.pk]

    assert outbound.postback_resume(postback_id=failing.pk, now=timezone.now()) == 2
    for requeued in (given_up.pk, retrying):
        assert (_row(pk=requeued).state, _row(pk=requeued).attempts) == ("pending", 0)
    assert _row(pk=old_row).state == "failed"


def test_resume_leaves_rows_cancelled_for_other_reasons(conversion):
    postback = _postback(conversion, "https://tracker.example.net/pb")
    [row_id] = _write(conversion)
    outbound.outbox_cancel(outbox_ids=[row_id], now=timezone.now())
    outbound.postback_pause(postback_id=postback.pk, reason="x", now=timezone.now())
    assert outbound.postback_resume(postback_id=postback.pk, now=timezone.now()) == 0
    assert (_row().state, _row().last_error) == ("cancelled", "cancelled")


def test_a_resumed_postback_gets_a_whole_window_before_it_is_paused_again(conversion, failing):
    """The failures that paused it are history once it is resumed: a URL that still fails is
    paused again only after OUTBOUND_POSTBACK_PAUSE_AFTER_HOURS of failures since the resume."""
    _log(failing, conversion, succeeded=False, hours_ago=100)
    assert outbound.postbacks_pause_failing(now=timezone.now()) == [failing.pk]
    resumed = timezone.now()
    assert outbound.postback_resume(postback_id=failing.pk, now=resumed) == 1
    failing.refresh_from_db()
    assert (failing.paused_at, failing.resumed_at) == (None, resumed)

    # The requeued row is tried again and fails at once.
    PostbackOutbox.objects.update(attempts=1)
    _log(failing, conversion, succeeded=False, hours_ago=0)
    assert outbound.postbacks_pause_failing(now=timezone.now()) == []
    assert outbound.postbacks_pause_failing(now=resumed + timedelta(hours=71)) == []
    failing.refresh_from_db()
    assert failing.paused_at is None

    # Still failing 72 hours after the resume: paused again.
    later = timezone.now() + timedelta(hours=72, minutes=1)
    assert outbound.postbacks_pause_failing(now=later) == [failing.pk]


def test_failing_since_counts_from_the_resume(conversion, failing):
    _log(failing, conversion, succeeded=False, hours_ago=100)
    _log(failing, conversion, succeeded=False, hours_ago=2)
    since = outbound.postback_failing_since(postback_id=failing.pk)
    assert since < timezone.now() - timedelta(hours=99)
    resumed = timezone.now() - timedelta(hours=3)
    since = outbound.postback_failing_since(postback_id=failing.pk, not_before=resumed)
    assert resumed < since < timezone.now() - timedelta(hours=1)
    assert (
        outbound.postback_failing_since(postback_id=failing.pk, not_before=timezone.now()) is None
    )


def test_resuming_a_postback_that_is_not_paused_changes_nothing(conversion):
    postback = _postback(conversion, "https://tracker.example.net/pb")
    assert outbound.postback_resume(postback_id=postback.pk, now=timezone.now()) == 0
    postback.refresh_from_db()
    assert postback.resumed_at is None


# --- resend, cancel, backfill -------------------------------------------------------------------


def test_resend_requeues_undelivered_rows_and_sends_delivered_ones_as_new_rows(
    conversion, goal, django_capture_on_commit_callbacks
):
    postback = _postback(conversion, "https://tracker.example.net/pb")
    user = factories.UserFactory(is_staff=True)
    states = ["failed", "cancelled", "delivered", "pending"]
    ids = []
    for n, state in enumerate(states):
        click = factories.ClickFactory(offer=goal.offer, affiliate=conversion.affiliate)
        other = factories.ConversionFactory(click=click, goal=goal, order_id=f"r{n}")
        [row_id] = _write(other)
        PostbackOutbox.objects.filter(pk=row_id).update(
            state=state, attempts=8, next_attempt_at=None
        )
        ids.append(row_id)
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        result = outbound.outbox_resend(outbox_ids=ids, now=now, user_id=user.pk)

    assert result == outbound.Resend(queued=4, already_delivered=1, skipped=0)
    [resend] = PostbackOutbox.objects.filter(resend_number=1)
    rows = PostbackOutbox.objects.filter(postback=postback).order_by("id")
    assert list(rows.values_list("pk", "resend_number", "state", "attempts")) == [
        (ids[0], 0, "pending", 0),
        (ids[1], 0, "pending", 0),
        (ids[2], 0, "delivered", 8),  # the delivered event keeps its record
        (ids[3], 0, "pending", 0),
        (resend.pk, 1, "pending", 0),
    ]
    original = _row(pk=ids[2])
    assert (resend.conversion_id, resend.postback_id, resend.conversion_status) == (
        original.conversion_id,
        original.postback_id,
        original.conversion_status,
    )
    assert (resend.requested_by, resend.next_attempt_at, resend.created_at) == (user, now, now)
    assert _queued("postbacks") == [
        ("conversions.deliver_outbox", [[ids[0], ids[1], ids[3]]]),
        ("conversions.deliver_outbox", [[resend.pk]]),
    ]


def test_a_delivered_event_resent_on_request_is_delivered_again_as_a_new_event(conversion, tracker):
    """The gap this closes: before, delivery_one_success refused a second success per event, so
    a resend of a delivered postback could never succeed. Now a resend is a row of its own."""
    secret = signing_key_create(affiliate=conversion.affiliate)
    postback = _postback(conversion, tracker.url + "/pb?cid={click_id}", sign=True)
    [row_id] = _write(conversion)
    assert outbound.outbox_deliver_due(outbox_ids=[row_id]) == 1

    result = outbound.outbox_resend(outbox_ids=[row_id], now=timezone.now())
    assert result == outbound.Resend(queued=1, already_delivered=1, skipped=0)
    assert outbound.outbox_deliver_due() == 1

    first, second = tracker.requests
    assert first["path"] == second["path"] == f"/pb?cid={conversion.click_id}"
    resend = _row(resend_number=1)
    assert [first["headers"]["webhook-id"], second["headers"]["webhook-id"]] == [
        f"msg_{row_id}",
        f"msg_{resend.pk}",
    ]
    assert _standard_webhooks_verify(secret, second["headers"], second["path"].encode())
    assert set(PostbackOutbox.objects.values_list("resend_number", "state")) == {
        (0, "delivered"),
        (1, "delivered"),
    }
    successes = OutboundPostbackDelivery.objects.filter(postback=postback, succeeded=True)
    assert sorted(successes.values_list("outbox_id", flat=True)) == [row_id, resend.pk]


def test_asking_twice_before_the_resend_went_out_adds_no_second_resend(conversion):
    _postback(conversion, "https://tracker.example.net/pb")
    [row_id] = _write(conversion)
    PostbackOutbox.objects.filter(pk=row_id).update(state="delivered")
    first = outbound.outbox_resend(outbox_ids=[row_id], now=timezone.now())
    # The affiliate clicks again (or staff select both the original and the resend).
    resend = _row(resend_number=1)
    second = outbound.outbox_resend(outbox_ids=[row_id, resend.pk], now=timezone.now())
    assert (first.already_delivered, second) == (1, outbound.Resend(1, 0, 0))
    assert PostbackOutbox.objects.count() == 2
    # Once that resend is delivered, another request makes the next one.
    PostbackOutbox.objects.filter(pk=resend.pk).update(state="delivered")
    outbound.outbox_resend(outbox_ids=[row_id], now=timezone.now())
    assert sorted(PostbackOutbox.objects.values_list("resend_number", flat=True)) == [0, 1, 2]


@pytest.mark.django_db(transaction=True)
def test_two_resend_requests_at_once_make_one_resend(affiliate, goal):
    postback = factories.AffiliatePostbackFactory(
        affiliate=affiliate, url="https://tracker.example.net/pb"
    )
    click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate)
    conversion = factories.ConversionFactory(click=click, goal=goal)
    [row_id] = outbound.outbox_write(conversion=conversion, now=timezone.now())
    PostbackOutbox.objects.filter(pk=row_id).update(state="delivered")
    barrier = threading.Barrier(2)
    results: list[outbound.Resend] = []

    def request() -> None:
        try:
            barrier.wait(5)
            results.append(outbound.outbox_resend(outbox_ids=[row_id], now=timezone.now()))
        finally:
            connection.close()

    threads = [threading.Thread(target=request) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(r.already_delivered for r in results) == [0, 1]
    assert list(
        PostbackOutbox.objects.filter(postback=postback)
        .order_by("resend_number")
        .values_list("resend_number", "state")
    ) == [(0, "delivered"), (1, "pending")]


@pytest.mark.parametrize("change", ["paused", "switched_off", "status_moved"])
def test_resend_skips_events_no_longer_true_to_send(conversion, change):
    postback = _postback(conversion, "https://tracker.example.net/pb")
    [delivered] = _write(conversion)
    PostbackOutbox.objects.filter(pk=delivered).update(state="delivered")
    click = factories.ClickFactory(offer=conversion.offer, affiliate=conversion.affiliate)
    failed_conversion = factories.ConversionFactory(click=click, goal=conversion.goal)
    [failed] = _write(failed_conversion)
    PostbackOutbox.objects.filter(pk=failed).update(state="failed", attempts=8)
    if change == "paused":
        AffiliatePostback.objects.filter(pk=postback.pk).update(paused_at=timezone.now())
    elif change == "switched_off":
        AffiliatePostback.objects.filter(pk=postback.pk).update(is_active=False)
    else:
        Conversion.objects.update(status=ConversionStatus.REVERSED)

    result = outbound.outbox_resend(outbox_ids=[delivered, failed], now=timezone.now())

    assert result == outbound.Resend(queued=0, already_delivered=0, skipped=2)
    assert sorted(PostbackOutbox.objects.values_list("pk", "state", "attempts")) == [
        (delivered, "delivered", 0),
        (failed, "failed", 8),
    ]


def test_the_automatic_path_still_delivers_an_event_at_most_once(conversion):
    """Replays of the write add nothing (resend_number 0 only), and the log takes one success
    per row whatever retries or lease take-overs try to record."""
    postback = _postback(conversion, "https://tracker.example.net/pb")
    [row_id] = _write(conversion)
    PostbackOutbox.objects.filter(pk=row_id).update(state="delivered")
    outbound.outbox_resend(outbox_ids=[row_id], now=timezone.now())
    assert _write(conversion) == []  # a replay after a resend exists: still nothing new
    assert PostbackOutbox.objects.count() == 2

    def success() -> None:
        OutboundPostbackDelivery.objects.create(
            conversion=conversion,
            outbox_id=row_id,
            postback=postback,
            conversion_status="approved",
            attempt=1,
            url="x",
            succeeded=True,
        )

    success()
    with pytest.raises(IntegrityError), transaction.atomic():
        success()
    assert OutboundPostbackDelivery.objects.filter(succeeded=True).count() == 1


def test_cancel_stops_pending_rows_only(conversion):
    _postback(conversion, "https://tracker.example.net/pb")
    [row_id] = _write(conversion)
    assert outbound.outbox_cancel(outbox_ids=[row_id], now=timezone.now()) == 1
    assert outbound.outbox_cancel(outbox_ids=[row_id], now=timezone.now()) == 0
    assert (_row().state, _row().next_attempt_at) == ("cancelled", None)


def test_conversion_resend_writes_missing_rows_and_is_scoped_to_the_affiliate(conversion):
    postback = _postback(conversion, "https://tracker.example.net/pb")  # added after the fact
    result = outbound.conversion_postbacks_resend(
        conversion_id=conversion.pk, affiliate_id=conversion.affiliate_id, now=timezone.now()
    )
    assert result == outbound.Resend(queued=1, already_delivered=0, skipped=0)
    assert _row().postback == postback
    with pytest.raises(outbound.OutboxError) as refused:
        outbound.conversion_postbacks_resend(
            conversion_id=conversion.pk,
            affiliate_id=factories.AffiliateFactory().pk,
            now=timezone.now(),
        )
    assert refused.value.code == "conversion_not_found"


def test_backfill_writes_rows_for_recent_conversions_in_scope(goal, affiliate):
    now = timezone.now()
    other_goal = factories.GoalFactory(offer=goal.offer, code="sale", is_default=False)

    def convert(order: str, *, days_ago: float, status: str = "approved", on=goal):
        click = factories.ClickFactory(offer=on.offer, affiliate=affiliate)
        return factories.ConversionFactory(
            click=click,
            goal=on,
            order_id=order,
            status=status,
            created_at=now - timedelta(days=days_ago),
        )

    recent = convert("recent", days_ago=1)
    edge = convert("edge", days_ago=6.9)
    convert("old", days_ago=8)
    convert("pending", days_ago=1, status=ConversionStatus.PENDING)
    convert("other-goal", days_ago=1, on=other_goal)
    factories.ConversionFactory(click=factories.ClickFactory(offer=goal.offer), goal=goal)
    postback = factories.AffiliatePostbackFactory(
        affiliate=affiliate, offer=goal.offer, goal=goal, url="https://tracker.example.net/pb"
    )

    assert outbound.postback_backfill(postback_id=postback.pk, now=now) == 2
    assert set(PostbackOutbox.objects.values_list("conversion_id", "state")) == {
        (recent.pk, "pending"),
        (edge.pk, "pending"),
    }
    assert outbound.postback_backfill(postback_id=postback.pk, now=now) == 0  # idempotent


@pytest.mark.parametrize("days", [0, -1, 31])
def test_backfill_is_bounded(conversion, days):
    postback = _postback(conversion, "https://tracker.example.net/pb")
    with pytest.raises(outbound.OutboxError) as refused:
        outbound.postback_backfill(postback_id=postback.pk, now=timezone.now(), days=days)
    assert refused.value.code == "invalid_days"


def test_backfill_refuses_a_paused_postback(conversion):
    postback = _postback(conversion, "https://tracker.example.net/pb", paused_at=timezone.now())
    with pytest.raises(outbound.OutboxError) as refused:
        outbound.postback_backfill(postback_id=postback.pk, now=timezone.now())
    assert refused.value.code == "postback_paused"


# --- test fire ----------------------------------------------------------------------------------


def test_test_fire_calls_with_sample_values_and_logs_a_test_delivery(affiliate, tracker):
    postback = factories.AffiliatePostbackFactory(
        affiliate=affiliate, url=tracker.url + "/pb?cid={click_id}&p={payout}&st={status}"
    )
    result = outbound.postback_test_fire(postback_id=postback.pk, now=timezone.now())
    assert (result.result, result.http_status) == ("delivered", 200)
    assert isinstance(result.latency_ms, int)
    assert tracker.paths == ["/pb?cid=test0000000000000000000000&p=1.00&st=approved"]
    delivery = OutboundPostbackDelivery.objects.get()
    assert (delivery.is_test, delivery.conversion, delivery.outbox) == (True, None, None)
    assert outbound.postbacks_pause_failing(now=timezone.now()) == []


def test_test_fire_reports_a_failing_status(affiliate, tracker):
    tracker.statuses = [404]
    postback = factories.AffiliatePostbackFactory(affiliate=affiliate, url=tracker.url + "/pb")
    result = outbound.postback_test_fire(postback_id=postback.pk, now=timezone.now())
    assert (result.result, result.http_status) == ("failed", 404)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/pb", "http://10.1.2.3/pb", "http://[::1]/", "http://nowhere.invalid/"],
)
def test_test_fire_says_only_refused(affiliate, url):
    postback = factories.AffiliatePostbackFactory(affiliate=affiliate, url=url)
    result = outbound.postback_test_fire(postback_id=postback.pk, now=timezone.now())
    assert result == outbound.FireResult(result="refused", http_status=None, latency_ms=None)
    assert OutboundPostbackDelivery.objects.get().error.startswith("refused: ")  # staff see why


def test_test_fires_are_limited_per_affiliate_per_minute(affiliate, tracker, settings):
    settings.OUTBOUND_TEST_FIRE_PER_MINUTE = 3
    postback = factories.AffiliatePostbackFactory(affiliate=affiliate, url=tracker.url + "/pb")
    other = factories.AffiliatePostbackFactory(url=tracker.url + "/other")
    minute = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    at = minute + timedelta(seconds=45)
    for _ in range(3):
        assert outbound.postback_test_fire(postback_id=postback.pk, now=at).result == "delivered"

    with pytest.raises(outbound.FireRateLimited) as limited:
        outbound.postback_test_fire(postback_id=postback.pk, now=at)

    refused = limited.value
    assert (refused.code, refused.http_status, refused.retry_after) == ("rate_limited", 429, 15)
    assert tracker.paths == ["/pb"] * 3  # the refused fire made no call and logged nothing
    assert OutboundPostbackDelivery.objects.filter(is_test=True).count() == 3
    # Another affiliate has a budget of its own; the next minute starts afresh.
    assert outbound.postback_test_fire(postback_id=other.pk, now=at).result == "delivered"
    next_minute = minute + timedelta(minutes=1)
    assert outbound.postback_test_fire(postback_id=postback.pk, now=next_minute).result == (
        "delivered"
    )


def test_refused_targets_count_against_the_limit_like_any_other(affiliate, settings):
    """A 429 must not tell which URLs we refuse: every fire counts, whatever its target."""
    settings.OUTBOUND_TEST_FIRE_PER_MINUTE = 2
    refused = factories.AffiliatePostbackFactory(affiliate=affiliate, url="http://10.0.0.1/pb")
    now = timezone.now()
    for _ in range(2):
        assert outbound.postback_test_fire(postback_id=refused.pk, now=now).result == "refused"
    with pytest.raises(outbound.FireRateLimited):
        outbound.postback_test_fire(postback_id=refused.pk, now=now)


def test_without_redis_a_test_fire_is_not_limited(affiliate, tracker, settings, redis_down):
    settings.OUTBOUND_TEST_FIRE_PER_MINUTE = 1
    postback = factories.AffiliatePostbackFactory(affiliate=affiliate, url=tracker.url + "/pb")
    for _ in range(2):
        fired = outbound.postback_test_fire(postback_id=postback.pk, now=timezone.now())
        assert fired.result == "delivered"


# --- tasks --------------------------------------------------------------------------------------


def test_deliver_outbox_task_delivers_the_rows_it_is_given(conversion, tracker):
    _postback(conversion, tracker.url + "/pb")
    ids = _write(conversion)
    assert tasks.deliver_outbox.apply(args=[ids]).get() == 1
    assert tasks.deliver_outbox.apply(args=[ids]).get() == 0  # twice: nothing more
    assert len(tracker.requests) == 1


def test_beat_task_delivers_due_rows_only(conversion, tracker):
    _postback(conversion, tracker.url + "/due")
    _postback(conversion, tracker.url + "/later")
    _write(conversion)
    PostbackOutbox.objects.filter(postback__url__endswith="/later").update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    assert tasks.deliver_due_postbacks.apply().get() == 1
    assert tracker.paths == ["/due"]


def test_old_task_names_still_drain(conversion, tracker):
    postback = _postback(conversion, tracker.url + "/pb")
    _write(conversion)
    assert tasks.deliver_affiliate_postback.apply(args=[conversion.pk, postback.pk]).get() == 1
    assert tasks.fire_affiliate_postbacks.apply(args=[conversion.pk]).get() == 0
    assert tasks.fire_affiliate_postbacks.apply(args=[10**9]).get() == 0


def test_pause_task(conversion, failing):
    _log(failing, conversion, succeeded=False, hours_ago=80)
    assert tasks.pause_failing_postbacks.apply().get() == [failing.pk]


# --- retention ----------------------------------------------------------------------------------


def _inbound(days_ago: float) -> InboundPostbackLog:
    row = InboundPostbackLog.objects.create(
        method="GET", path="/postback", result="rejected", reason="unknown_click", http_status=404
    )
    InboundPostbackLog.objects.filter(pk=row.pk).update(
        created_at=timezone.now() - timedelta(days=days_ago)
    )
    return row


def test_prune_deletes_old_log_rows_only(conversion, settings):
    settings.INBOUND_LOG_RETENTION_DAYS = 90
    settings.OUTBOUND_DELIVERY_RETENTION_DAYS = 30
    old_in = [_inbound(91) for _ in range(3)]
    new_in = _inbound(89)
    postback = _postback(conversion, "https://tracker.example.net/pb")
    _log(postback, conversion, succeeded=False, hours_ago=31 * 24)
    _log(postback, conversion, succeeded=False, hours_ago=29 * 24)

    assert tasks.prune_inbound_log.apply().get() == 4

    assert list(InboundPostbackLog.objects.values_list("pk", flat=True)) == [new_in.pk]
    assert not InboundPostbackLog.objects.filter(pk__in=[r.pk for r in old_in]).exists()
    assert OutboundPostbackDelivery.objects.count() == 1


def test_prune_works_in_bounded_batches_and_says_when_more_is_left(db):
    for _ in range(5):
        _inbound(100)
    assert outbound.logs_prune(now=timezone.now(), batch_size=2, max_batches=2) == (4, True)
    assert outbound.logs_prune(now=timezone.now(), batch_size=2, max_batches=2) == (1, False)
    assert InboundPostbackLog.objects.count() == 0


def test_prune_task_queues_itself_again_when_more_is_left(db, monkeypatch):
    monkeypatch.setattr(outbound, "logs_prune", lambda now: (10, True))
    tasks.prune_inbound_log.apply()
    assert _queued("default") == [("conversions.prune_inbound_log", [])]


def _settled_row(conversion, postback, *, state: str, days_ago: float) -> PostbackOutbox:
    row = PostbackOutbox.objects.create(
        conversion=conversion,
        postback=postback,
        conversion_status="approved",
        resend_number=PostbackOutbox.objects.filter(conversion=conversion).count(),
        state=state,
        created_at=timezone.now() - timedelta(days=days_ago + 1),
    )
    PostbackOutbox.objects.filter(pk=row.pk).update(
        updated_at=timezone.now() - timedelta(days=days_ago)
    )
    return row


def test_prune_deletes_settled_outbox_rows_after_retention_and_keeps_their_attempts(
    conversion, settings
):
    settings.OUTBOUND_OUTBOX_RETENTION_DAYS = 60
    settings.OUTBOUND_DELIVERY_RETENTION_DAYS = 365
    postback = _postback(conversion, "https://tracker.example.net/pb")
    old = {
        state: _settled_row(conversion, postback, state=state, days_ago=61)
        for state in ("delivered", "failed", "cancelled")
    }
    waiting = _settled_row(conversion, postback, state="pending", days_ago=400)
    recent = _settled_row(conversion, postback, state="delivered", days_ago=59)
    attempt = OutboundPostbackDelivery.objects.create(
        conversion=conversion,
        outbox=old["delivered"],
        postback=postback,
        conversion_status="approved",
        attempt=1,
        url="https://tracker.example.net/pb",
        succeeded=True,
    )

    assert tasks.prune_inbound_log.apply().get() == 3

    assert sorted(PostbackOutbox.objects.values_list("pk", flat=True)) == sorted(
        [waiting.pk, recent.pk]  # a pending row is never pruned: it is still to deliver
    )
    attempt.refresh_from_db()
    assert (attempt.outbox_id, attempt.succeeded) == (None, True)  # the log keeps it
    assert tasks.prune_inbound_log.apply().get() == 0  # twice: nothing more


def test_prune_outbox_works_in_bounded_batches(conversion, settings):
    settings.OUTBOUND_OUTBOX_RETENTION_DAYS = 30
    postback = _postback(conversion, "https://tracker.example.net/pb")
    for _ in range(5):
        _settled_row(conversion, postback, state="delivered", days_ago=31)
    assert outbound.logs_prune(now=timezone.now(), batch_size=2, max_batches=2) == (4, True)
    assert outbound.logs_prune(now=timezone.now(), batch_size=2, max_batches=2) == (1, False)
    assert PostbackOutbox.objects.count() == 0


def test_prune_outbox_finds_its_rows_through_the_settled_index(db, settings):
    """The SQL names the states exactly as the outbox_settled index's condition does, so the
    planner can use that index instead of reading the whole outbox."""
    assert sorted(SETTLED_OUTBOX_STATES) == ["cancelled", "delivered", "failed"]
    select = outbound._PRUNE_OUTBOX_SQL.split("AS (", 1)[1].split("FOR UPDATE", 1)[0]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + select, [timezone.now(), 10])
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "outbox_settled" in plan, plan


@pytest.mark.parametrize(("days", "fails"), [("29", True), ("30", False)])
def test_outbox_retention_below_the_backfill_reach_is_refused_at_start(days, fails):
    """A backfill or a resume reaches 30 days back and must find the rows written there."""
    env = {**os.environ, "SECRET_KEY": "x", "OUTBOUND_OUTBOX_RETENTION_DAYS": days}
    started = subprocess.run(
        [sys.executable, "-c", "import config.settings.base"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (started.returncode != 0) is fails, started.stderr
    assert ("OUTBOUND_OUTBOX_RETENTION_DAYS must be at least 30" in started.stderr) is fails


def test_a_big_kick_is_one_run_over_what_is_due_not_a_message_of_ids(db):
    outbound._kick_now(list(range(1, outbound.KICK_MAX_IDS + 2)))
    outbound._kick_now([7, 8])
    assert _queued("postbacks") == [
        ("conversions.deliver_due_postbacks", []),
        ("conversions.deliver_outbox", [[7, 8]]),
    ]


def test_beat_runs_the_outbox_jobs(settings):
    schedule = {entry["task"]: entry for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    due = schedule["conversions.deliver_due_postbacks"]
    assert 1 <= due["schedule"] <= 10
    assert due["options"]["expires"] <= 2 * due["schedule"] + 10
    assert "conversions.pause_failing_postbacks" in schedule
    assert "conversions.prune_inbound_log" in schedule


def test_an_event_the_log_shows_delivered_gets_no_row(conversion):
    """Delivered before the outbox existed (the countdown-retry design): a backfill or a resend
    does not send it again."""
    postback = _postback(conversion, "https://tracker.example.net/pb")
    _log(postback, conversion, succeeded=True, hours_ago=1)
    assert _write(conversion) == []
    assert outbound.postback_backfill(postback_id=postback.pk, now=timezone.now()) == 0
    assert PostbackOutbox.objects.count() == 0


def test_a_success_already_on_record_closes_the_row(conversion, tracker, monkeypatch):
    """Another holder recorded the success while this one was calling: the second success
    cannot go in the log (delivery_one_success_per_row), and the row ends delivered, not leased
    forever."""
    postback = _postback(conversion, tracker.url + "/pb")
    _write(conversion)
    [claim] = outbound.outbox_claim(now=timezone.now())
    real_attempt = outbound._attempt

    def raced(call):
        result = real_attempt(call)
        _log(postback, conversion, succeeded=True, hours_ago=0, outbox_id=claim.outbox_id)
        return result

    monkeypatch.setattr(outbound, "_attempt", raced)
    assert outbound.outbox_deliver_claimed(claim) is None
    row = _row()
    assert (row.state, row.next_attempt_at) == ("delivered", None)
    assert OutboundPostbackDelivery.objects.filter(succeeded=True).count() == 1


def test_rows_committed_within_the_window_go_out_in_one_message(db, settings):
    """Under load each web process sends one delivery message per OUTBOUND_KICK_WINDOW_SECONDS,
    not one per conversion; the first rows wait no longer than the window."""
    settings.OUTBOUND_KICK_WINDOW_SECONDS = 0.3
    kicks = outbound._KickBatcher()
    started = time.monotonic()
    kicks.add([1, 2])
    kicks.add([3])
    assert _queued("postbacks") == []  # the window is still open
    deadline = started + 5
    while not _queued("postbacks") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert time.monotonic() - started >= 0.3
    assert _queued("postbacks") == [("conversions.deliver_outbox", [[1, 2, 3]])]
    kicks.add([4])  # a new window, a new message
    kicks.flush()
    assert _queued("postbacks") == [
        ("conversions.deliver_outbox", [[1, 2, 3]]),
        ("conversions.deliver_outbox", [[4]]),
    ]


def test_a_forked_child_does_not_wait_for_its_parents_timer(db, settings, monkeypatch):
    settings.OUTBOUND_KICK_WINDOW_SECONDS = 60
    kicks = outbound._KickBatcher()
    kicks.add([1])  # the parent's timer is running (for a minute)
    monkeypatch.setattr(outbound.os, "getpid", lambda: -1)  # as seen from a forked worker
    kicks.add([2])
    kicks.flush()
    assert _queued("postbacks") == [("conversions.deliver_outbox", [[2]])]
