from __future__ import annotations

from datetime import datetime
from typing import Any

import redis
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.common.redis import redis_client
from apps.offers.caps import cap_counter_key, cap_period_start
from apps.offers.models import AccessStatus, CapMetric, Offer, OfferAccess, OfferCap, OfferStatus
from apps.partners.models import Affiliate


# Row by row with save(), not .update(): post_save is what tells every web process's click
# catalog to drop the old state (apps/tracking/signals.py). Admin actions touch a few rows.
@transaction.atomic
def offer_pause(*, offer_ids: list[int]) -> int:
    offers = Offer.objects.select_for_update().filter(pk__in=offer_ids, status=OfferStatus.ACTIVE)
    paused = 0
    for offer in offers:
        offer.status = OfferStatus.PAUSED
        offer.save(update_fields=["status", "updated_at"])
        paused += 1
    return paused


@transaction.atomic
def offer_access_set(*, access_ids: list[int], status: AccessStatus) -> int:
    accesses = OfferAccess.objects.select_for_update().filter(pk__in=access_ids)
    changed = 0
    for access in accesses:
        access.status = status
        access.save(update_fields=["status", "updated_at"])
        changed += 1
    return changed


@transaction.atomic
def offer_access_grant(*, offer: Offer, affiliate: Affiliate) -> OfferAccess:
    access, _ = OfferAccess.objects.update_or_create(
        offer=offer, affiliate=affiliate, defaults={"status": AccessStatus.APPROVED}
    )
    return access


# KEYS: counter; ARGV: floor, ttl (0: none). Raises the counter to the floor; 1 if it did.
_COUNTER_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[1])
if floor <= current then return 0 end
redis.call('INCRBY', KEYS[1], floor - current)
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX') end
return 1
"""


def caps_reconcile(*, now: datetime | None = None) -> int:
    """Bring the Redis cap counters up to what PostgreSQL has recorded for the current period.

    Counters only ever go up here: Redis also counts clicks still in the buffer, so PostgreSQL's
    count is a floor (it restores a counter lost with a Redis restart), never a correction down.
    """
    from apps.conversions.models import Conversion  # noqa: PLC0415 - conversions imports offers
    from apps.tracking.models import Click  # noqa: PLC0415

    now = now or timezone.now()
    client = redis_client()
    reconciled = 0
    for cap in OfferCap.objects.select_related("offer"):
        tz = cap.offer.timezone
        start = cap_period_start(period=cap.period, now=now, timezone=tz)
        if cap.metric == CapMetric.CLICKS:
            rows: QuerySet[Any] = Click.objects.filter(offer_id=cap.offer_id, fallback_reason="")
        else:
            rows = Conversion.objects.filter(offer_id=cap.offer_id)
            if cap.goal_id:
                rows = rows.filter(goal_id=cap.goal_id)
        if cap.affiliate_id:
            rows = rows.filter(affiliate_id=cap.affiliate_id)
        if start is not None:
            rows = rows.filter(created_at__gte=start)
        key, ttl = cap_counter_key(cap_id=cap.pk, period=cap.period, now=now, timezone=tz)
        counted = rows.count()
        try:
            # In one step on the server: a GET then SET would drop clicks counted in between.
            reconciled += int(client.eval(_COUNTER_RAISE, 1, key, counted, ttl))
        except redis.RedisError:
            return reconciled
    return reconciled
