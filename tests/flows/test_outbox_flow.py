"""The postback outbox for real: Celery worker processes (with beat), PostgreSQL, Redis, and a local
HTTP receiver standing in for the affiliate's tracker. A receiver that fails and recovers gets the
event once; a worker SIGKILLed mid-call is replaced and the event still arrives exactly once."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from apps.conversions import outbound, side_effects
from apps.conversions.models import OutboundPostbackDelivery, PostbackOutbox
from tests import factories
from tests.workers import celery_worker_start, celery_worker_stop

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

# Through the worker's environment: a short schedule so retries happen within the test, and
# beat polling the outbox twice a second.
FAST = {
    "OUTBOUND_ALLOW_LOOPBACK": "1",
    "OUTBOUND_POSTBACK_BACKOFF_SECONDS": "1,1,1",
    "OUTBOUND_POSTBACK_POLL_SECONDS": "0.5",
    "OUTBOUND_POSTBACK_TIMEOUT_SECONDS": "2",
}


@dataclass
class Tracker:
    """Answers the next of `statuses` (the last one repeats). While `hold` is set, a request waits
    (as a slow tracker would) until it is cleared or the test ends."""

    url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    hits: list[str] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    state = Tracker()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                state.hits.append(self.path)
                status = state.statuses.pop(0) if len(state.statuses) > 1 else state.statuses[0]
                held = state.hold.is_set()
            state.arrived.set()
            if held:
                state.stop.wait(60)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:
                pass  # the caller is gone (killed)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    yield state
    state.stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def workers(tmp_path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*, beat: bool) -> subprocess.Popen[bytes]:
        worker = celery_worker_start(
            queues="postbacks",
            log_path=tmp_path / "worker.log",
            beat_schedule=tmp_path / f"celerybeat-{len(started)}" if beat else None,
            **FAST,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        celery_worker_stop(worker)


def _wait_for(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the worker")


def _conversion_with_postback(url: str):
    goal = factories.GoalFactory(code="lead", payout=Decimal("3.10"))
    affiliate = factories.AffiliateFactory()
    postback = factories.AffiliatePostbackFactory(affiliate=affiliate, url=url)
    click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate)
    conversion = factories.ConversionFactory(click=click, goal=goal, order_id="L-1")
    # As the conversion services do: inside the transaction that records the change. The kick
    # goes to the broker when it commits.
    with transaction.atomic():
        side_effects.conversion_changed(conversion)
    return conversion, postback


def _log(conversion) -> list[tuple[int, int | None, bool]]:
    return list(
        OutboundPostbackDelivery.objects.filter(conversion=conversion)
        .order_by("id")
        .values_list("attempt", "http_status", "succeeded")
    )


def test_a_tracker_that_fails_twice_then_recovers_gets_the_event_once(tracker, workers):
    tracker.statuses = [500, 500, 200]
    conversion, _ = _conversion_with_postback(tracker.url + "/pb?cid={click_id}&st={status}")
    workers(beat=True)

    _wait_for(lambda: PostbackOutbox.objects.filter(state="delivered").exists())
    time.sleep(2)  # a few more beat runs: nothing else may go out

    assert _log(conversion) == [(1, 500, False), (2, 500, False), (3, 200, True)]
    assert tracker.hits == [f"/pb?cid={conversion.click_id}&st=approved"] * 3
    row = PostbackOutbox.objects.get()
    assert (row.state, row.attempts, row.last_error) == ("delivered", 3, "")


def test_a_worker_killed_mid_call_is_replaced_and_the_event_arrives_once(tracker, workers):
    tracker.hold.set()  # the first call hangs at the tracker
    conversion, _ = _conversion_with_postback(tracker.url + "/pb?cid={click_id}")
    first = workers(beat=False)  # only the kick: the replacement's beat does the retry

    assert tracker.arrived.wait(60), "the first worker never called"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    row = PostbackOutbox.objects.get()
    assert (row.state, row.attempts) == ("pending", 1)  # leased, never finished
    assert _log(conversion) == []
    tracker.hold.clear()

    workers(beat=True)
    _wait_for(lambda: PostbackOutbox.objects.filter(state="delivered").exists())
    time.sleep(2)

    successes = OutboundPostbackDelivery.objects.filter(conversion=conversion, succeeded=True)
    assert successes.count() == 1
    assert _log(conversion) == [(2, 200, True)]
    assert len(tracker.hits) == 2  # the call cut short by the kill, and the one that got through
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("delivered", 2)


def test_a_delivered_event_resent_on_request_arrives_once_more_and_only_once(tracker, workers):
    """A resend someone asked for is a new event: the worker delivers it (a second success, on
    its own row), and beat runs after that send nothing more."""
    conversion, _ = _conversion_with_postback(tracker.url + "/pb?cid={click_id}")
    workers(beat=True)
    _wait_for(lambda: PostbackOutbox.objects.filter(state="delivered").exists())
    [original] = PostbackOutbox.objects.all()

    with transaction.atomic():  # the kick goes to the broker on commit, as from the admin
        resent = outbound.outbox_resend(outbox_ids=[original.pk], now=timezone.now())
    assert (resent.queued, resent.already_delivered) == (1, 1)
    _wait_for(lambda: PostbackOutbox.objects.filter(resend_number=1, state="delivered").exists())
    time.sleep(2)

    assert tracker.hits == [f"/pb?cid={conversion.click_id}"] * 2
    successes = OutboundPostbackDelivery.objects.filter(conversion=conversion, succeeded=True)
    assert sorted(successes.values_list("outbox__resend_number", flat=True)) == [0, 1]
