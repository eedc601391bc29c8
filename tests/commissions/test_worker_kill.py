"""Fault test: a real Celery worker SIGKILLed in the middle of an accrual run; a rerun gives
exactly the ledger a clean run gives."""

from __future__ import annotations

import os
import signal
import time
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from apps.commissions.models import AccrualQueue, LedgerEntry
from apps.commissions.services import commission_accrue, commission_accrue_queued
from apps.commissions.tasks import accrue_pending
from tests import factories
from tests.workers import celery_worker_start, celery_worker_stop

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

BATCH = 5


def _dsn() -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _wait_for(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_sigkill_mid_accrual_then_rerun_gives_the_clean_ledger(tmp_path):
    goal = factories.GoalFactory(code="lead")
    affiliate = factories.AffiliateFactory()
    conversions = []
    for n in range(20):
        click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate)
        conversions.append(
            factories.ConversionFactory(click=click, goal=goal, payout=Decimal(f"{n + 1}.05"))
        )
    first = conversions[0].pk
    assert [c.pk for c in conversions] == list(range(first, first + 20))
    blocked = conversions[2 * BATCH]  # first conversion of the third id range

    # Another session holds an uncommitted entry with the key the worker is about to insert for
    # `blocked`: the worker's third INSERT waits on it, after two ranges have committed.
    with psycopg.connect(_dsn()) as blocker:
        blocker.execute(
            "INSERT INTO commissions_ledgerentry (affiliate_id, kind, amount, currency,"
            " conversion_id, cycle, memo, created_at, available_at)"
            " VALUES (%s, 'commission', 0, 'USD', %s, 0, 'blocker', now(), now())",
            (affiliate.pk, blocked.pk),
        )
        worker = celery_worker_start(
            queues="commissions",
            log_path=tmp_path / "worker.log",
            COMMISSIONS_ACCRUE_BATCH_SIZE=str(BATCH),
        )
        try:
            accrue_pending.delay()
            _wait_for(lambda: LedgerEntry.objects.count() == 2 * BATCH)
            _wait_for(
                lambda: (
                    blocker.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    ).fetchone()[0]
                    == 1
                )
            )
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
            # The dead worker's server session goes with it, mid-statement.
            blocker.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            blocker.rollback()
        finally:
            celery_worker_stop(worker)

    partial = list(LedgerEntry.objects.values_list("conversion_id", flat=True))
    assert sorted(partial) == [c.pk for c in conversions[: 2 * BATCH]]

    # The killed batch's queue rows came back with its rollback: the rerun (the redelivered
    # task, or the next beat run) takes exactly those and completes the ledger.
    assert sorted(AccrualQueue.objects.values_list("conversion_id", flat=True)) == [
        c.pk for c in conversions[2 * BATCH :]
    ]
    assert commission_accrue_queued().written == 20 - 2 * BATCH
    assert AccrualQueue.objects.count() == 0
    assert commission_accrue() == 0  # a full rescan finds nothing missing
    assert sorted(
        LedgerEntry.objects.values_list("conversion_id", "kind", "cycle", "amount", "currency")
    ) == [(c.pk, "commission", 0, Decimal(f"{n + 1}.05"), "USD") for n, c in enumerate(conversions)]
