from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from apps.commissions import selectors, services

logger = logging.getLogger(__name__)

# How far back the hourly statement job looks for closed periods (covers a missed month).
STATEMENT_LOOKBACK_DAYS = 62


@shared_task(
    name="commissions.accrue_for_conversion",
    queue="commissions",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def accrue_for_conversion(conversion_id: int) -> None:
    services.commission_accrue(conversion_ids=[conversion_id])


@shared_task(
    name="commissions.accrue_pending",
    queue="commissions",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def accrue_pending() -> None:
    """The beat job: the conversions queued since the last run (not a rescan of every
    conversion). A backlog is worked in bounded runs, each re-enqueueing the next."""
    run = services.commission_accrue_queued(max_batches=settings.COMMISSIONS_ACCRUE_MAX_BATCHES)
    if not run.drained:
        logger.info("accrual queue not drained after %d batches; continuing", run.batches)
        accrue_pending.delay()


@shared_task(
    name="commissions.build_statements",
    queue="commissions",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def build_statements() -> None:
    now = timezone.now()
    today = now.date()
    # Periods are in each affiliate's time zone: east of UTC, "yesterday" is already today's
    # UTC date; the service builds only the periods that are closed locally.
    services.statements_build(
        date_from=today - dt.timedelta(days=STATEMENT_LOOKBACK_DAYS),
        date_to=today + dt.timedelta(days=1),
        now=now,
    )


@shared_task(name="commissions.ledger_check", queue="commissions", acks_late=True)
def ledger_check() -> int:
    grace = dt.timedelta(minutes=settings.COMMISSIONS_CHECK_GRACE_MINUTES)
    drifts = selectors.ledger_check(settled_before=timezone.now() - grace)
    for drift in drifts:
        logger.error("ledger drift: %s (%d rows): %r", drift.check, len(drift.rows), drift.rows)
    return len(drifts)
