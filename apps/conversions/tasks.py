"""Outbound postback delivery and log retention. Each task is a thin way into apps.conversions
.outbound; all of them are safe to run twice or side by side (rows are claimed, not assumed)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from apps.conversions import outbound

logger = logging.getLogger(__name__)


# Not acks_late: a lost message costs nothing, the beat job below delivers every due row anyway.
@shared_task(name="conversions.deliver_outbox", queue="postbacks")
def deliver_outbox(outbox_ids: list[int]) -> int:
    """Deliver rows just written (a new conversion or status, a resend) without waiting for beat."""
    return outbound.outbox_deliver_due(outbox_ids=[int(pk) for pk in outbox_ids])


@shared_task(name="conversions.deliver_due_postbacks", queue="postbacks")
def deliver_due_postbacks() -> int:
    """Beat, every few seconds (with `expires`, so a busy worker does not pile runs up): first
    attempts a kick missed, retries that came due, and rows whose worker died holding them."""
    return outbound.outbox_deliver_due()


@shared_task(name="conversions.pause_failing_postbacks", queue="postbacks")
def pause_failing_postbacks() -> list[int]:
    return outbound.postbacks_pause_failing(now=timezone.now())


@shared_task(
    name="conversions.prune_inbound_log",
    queue="default",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def prune_inbound_log() -> int:
    """Hourly retention of the inbound postback log, the outbound delivery log and the settled
    outbox rows (delivered, given up, cancelled), in bounded batches; when more is left than
    one run may delete, the task queues itself again. Idempotent: a second run finds nothing."""
    deleted, more = outbound.logs_prune(now=timezone.now())
    if more:
        prune_inbound_log.apply_async(countdown=1)
    return deleted


# The old names, kept so messages already queued by the countdown-retry design still drain.
@shared_task(name="conversions.fire_affiliate_postbacks", queue="postbacks")
def fire_affiliate_postbacks(conversion_id: int) -> int:
    """Superseded by the outbox (rows are written with the conversion): delivers its due rows."""
    ids = list(
        outbound.PostbackOutbox.objects.filter(conversion_id=conversion_id).values_list(
            "pk", flat=True
        )
    )
    return outbound.outbox_deliver_due(outbox_ids=ids) if ids else 0


@shared_task(name="conversions.deliver_affiliate_postback", queue="postbacks")
def deliver_affiliate_postback(conversion_id: int, postback_id: int) -> int:
    """Superseded by the outbox: delivers the row for this conversion and postback if it is due."""
    ids = list(
        outbound.PostbackOutbox.objects.filter(
            conversion_id=conversion_id, postback_id=postback_id
        ).values_list("pk", flat=True)
    )
    return outbound.outbox_deliver_due(outbox_ids=ids) if ids else 0
