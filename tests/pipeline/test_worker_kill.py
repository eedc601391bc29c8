"""A real drain worker killed with SIGKILL in the middle of a drain, then a new one: every click
reaches PostgreSQL exactly once."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.common.redis import redis_client
from apps.tracking.buffer import click_buffer_append
from apps.tracking.click_ids import click_id_new
from apps.tracking.models import Click
from apps.tracking.tasks import drain_clicks
from tests.pipeline.conftest import GB_IP, WINDOWS_CHROME, stream_state
from tests.workers import celery_worker_start, process_stop

pytestmark = pytest.mark.django_db(transaction=True)

N = 20_000
BATCH = 2_000


def _start_worker(log_path: Path, **env: str) -> subprocess.Popen[bytes]:
    return celery_worker_start(
        queues="clicks", log_path=log_path, CLICK_DRAIN_BATCH_SIZE=str(BATCH), **env
    )


@pytest.fixture
def workers(tmp_path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> subprocess.Popen[bytes]:
        worker = _start_worker(tmp_path / "worker.log", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        process_stop(worker, timeout=10)


def _wait_for(check: Callable[[], Any], timeout: float, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError("timed out")


def _buffer_clicks(offer_id: int, affiliate_id: int) -> set[str]:
    """N clicks through the real buffer script, as the web processes append them."""
    ids = set()
    now = timezone.now()
    for i in range(N):
        click_id = click_id_new(now)
        click = {
            "click_id": click_id,
            "offer_id": offer_id,
            "affiliate_id": affiliate_id,
            "created_at": now.isoformat(),
            "ip": GB_IP,
            "country": "GB",
            "user_agent": WINDOWS_CHROME,
            "sub1": str(i),
        }
        click_buffer_append(click=click, visitor_keys=[f"uclick:test:{i}"], caps=[])
        ids.add(click_id)
    return ids


def test_sigkill_mid_drain_then_restart_loses_and_duplicates_nothing(workers):
    first = workers()  # starts while the clicks are buffered
    sent = _buffer_clicks(offer_id=1, affiliate_id=2)
    assert len(sent) == N
    assert stream_state() == (N, 0)

    drain_clicks.delay()
    # Kill once a batch is committed and the next one has been read: inside a later batch.
    _wait_for(lambda: Click.objects.exists() and stream_state()[1] > 0, timeout=20)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=5)
    assert first.returncode == -signal.SIGKILL
    at_kill = Click.objects.count()
    assert 0 < at_kill < N  # died mid-drain
    # Nothing was acknowledged (and deleted) before it was committed.
    assert stream_state()[0] >= N - at_kill

    # A new worker claims what the dead one held once it has been idle for the claim time.
    workers(CLICK_DRAIN_CLAIM_IDLE_MS="100")
    drain_clicks.delay()
    _wait_for(lambda: stream_state() == (0, 0), timeout=20, every=0.1)

    assert Click.objects.count() == N
    assert set(Click.objects.values_list("click_id", flat=True)) == sent
    assert Click.objects.filter(is_unique=True, device_type="desktop").count() == N
    assert redis_client().xlen("clicks:stream") == 0
