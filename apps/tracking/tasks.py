from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from apps.tracking import click_store, drain

logger = logging.getLogger(__name__)


@shared_task(
    name="tracking.drain_clicks",
    queue="clicks",
    acks_late=True,
    autoretry_for=(OperationalError, RedisConnectionError),
    retry_backoff=True,
    max_retries=5,
)
def drain_clicks() -> int:
    """Move buffered clicks to PostgreSQL; beat runs it every second, several may run at once."""
    return drain.clicks_drain(max_batches=settings.CLICK_DRAIN_MAX_BATCHES)


@shared_task(
    name="tracking.maintain_partitions",
    queue="clicks",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def maintain_partitions() -> dict[str, int]:
    result = click_store.partitions_maintain(
        retention_days=settings.CLICK_RETENTION_DAYS,
        days_ahead=settings.CLICK_PARTITIONS_AHEAD_DAYS,
    )
    logger.info("click partitions: %s", result)
    return result
