from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from apps.conversions import outbound
from apps.conversions.models import Conversion

logger = logging.getLogger(__name__)


@shared_task(
    name="conversions.fire_affiliate_postbacks",
    queue="postbacks",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=8,
)
def fire_affiliate_postbacks(conversion_id: int) -> None:
    """Fan out: one delivery task per affiliate postback that covers this conversion."""
    conversion = Conversion.objects.filter(pk=conversion_id).first()
    if conversion is None:
        logger.warning("conversion %s not found; dropping", conversion_id)
        return
    for postback_id in outbound.postbacks_for_conversion(conversion).values_list("pk", flat=True):
        deliver_affiliate_postback.delay(conversion_id, postback_id)


@shared_task(
    name="conversions.deliver_affiliate_postback",
    queue="postbacks",
    bind=True,
    acks_late=True,
    max_retries=len(outbound.RETRY_BACKOFF_SECONDS),
)
def deliver_affiliate_postback(self, conversion_id: int, postback_id: int) -> None:  # type: ignore[no-untyped-def]
    delivery = outbound.postback_deliver(conversion_id=conversion_id, postback_id=postback_id)
    if delivery is None or delivery.succeeded:
        return
    if delivery.attempt >= settings.OUTBOUND_POSTBACK_MAX_ATTEMPTS:
        logger.warning("postback %s for conversion %s gave up", postback_id, conversion_id)
        return
    backoff = outbound.RETRY_BACKOFF_SECONDS[
        min(delivery.attempt - 1, len(outbound.RETRY_BACKOFF_SECONDS) - 1)
    ]
    raise self.retry(countdown=backoff, max_retries=settings.OUTBOUND_POSTBACK_MAX_ATTEMPTS)
