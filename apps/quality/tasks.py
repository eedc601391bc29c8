from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from apps.quality import behaviour

logger = logging.getLogger(__name__)


@shared_task(name="quality.rescore_recent", queue="quality")
def rescore_recent() -> None:
    """Beat: fan out one re-score per offer with recent conversions."""
    window = settings.QUALITY_RESCORE_WINDOW_HOURS
    for offer_id in behaviour.quality_offers_to_rescore(now=timezone.now(), window_hours=window):
        rescore_offer.delay(offer_id)


@shared_task(
    name="quality.rescore_offer",
    queue="quality",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def rescore_offer(offer_id: int) -> None:
    outcome = behaviour.quality_rescore_offer(
        offer_id=offer_id,
        now=timezone.now(),
        window_hours=settings.QUALITY_RESCORE_WINDOW_HOURS,
    )
    logger.info("quality re-score of offer %s: %s", offer_id, outcome)
