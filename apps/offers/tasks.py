from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from apps.offers import services


@shared_task(
    name="offers.reconcile_caps",
    queue="default",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def reconcile_caps() -> int:
    return services.caps_reconcile()
