"""Telling affiliates about their conversions: their postback URLs, called safely, logged."""

from __future__ import annotations

import http.client
import logging
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from apps.common.money import money_round
from apps.common.safe_http import UnsafeUrl, safe_request
from apps.conversions.models import Conversion, OutboundPostbackDelivery
from apps.offers.models import ConversionStatus
from apps.partners.models import AffiliatePostback
from apps.tracking.macros import macro_render

logger = logging.getLogger(__name__)

# Seconds to wait before attempt n+1 (index n-1); after the last, the delivery gives up.
# Kept under the broker visibility timeout (1 h) so a countdown task is never redelivered early;
# the long, durable schedule comes with the PostgreSQL outbox.
RETRY_BACKOFF_SECONDS = (5, 30, 120, 300, 900, 1800, 1800)


def postbacks_for_conversion(conversion: Conversion) -> QuerySet[AffiliatePostback]:
    """The affiliate's active postbacks whose scope (all, offer, goal) covers this conversion."""
    scope = (
        Q(offer__isnull=True)
        | Q(offer_id=conversion.offer_id, goal__isnull=True)
        | Q(offer_id=conversion.offer_id, goal_id=conversion.goal_id)
    )
    postbacks = AffiliatePostback.objects.filter(
        scope, affiliate_id=conversion.affiliate_id, is_active=True
    )
    if conversion.status == ConversionStatus.PENDING:
        return postbacks.filter(fire_on_pending=True)
    if conversion.status != ConversionStatus.APPROVED:
        return postbacks.none()
    return postbacks


def _amount_text(amount: Decimal, currency: str) -> str:
    """An amount as the affiliate expects it: the currency's minor unit ("3.10", "1005" yen),
    with extra places only when they carry value ("100.1234" sale, not "100.5000")."""
    rounded = money_round(amount, currency)
    return str(rounded if rounded == amount else amount.normalize())


def postback_macros(conversion: Conversion) -> dict[str, object]:
    click = conversion  # the conversion keeps its click's fields (click_* and sub ids)
    return {
        "click_id": click.click_id,
        "offer_id": conversion.offer_id,
        "aff_id": conversion.affiliate_id,
        "sub1": click.sub1,
        "sub2": click.sub2,
        "sub3": click.sub3,
        "sub4": click.sub4,
        "sub5": click.sub5,
        "source_id": click.source_id,
        "aff_click_id": click.aff_click_id,
        "creative_id": click.creative_id,
        "country": conversion.click_country,
        "ip": conversion.click_ip or "",
        "timestamp": int(conversion.created_at.timestamp()),
        "goal": conversion.goal.code,
        "payout": _amount_text(conversion.payout, conversion.currency),
        "currency": conversion.currency,
        "conversion_id": conversion.pk,
        "status": conversion.status,
        "order_id": conversion.order_id,
        "sale_amount": (
            ""
            if conversion.sale_amount is None
            else _amount_text(conversion.sale_amount, conversion.currency)
        ),
    }


def postback_deliver(*, conversion_id: int, postback_id: int) -> OutboundPostbackDelivery | None:
    """Make one attempt to deliver; returns its log row, or None when nothing is left to do."""
    conversion = Conversion.objects.select_related("goal").filter(pk=conversion_id).first()
    # Checked again at each attempt, not only at fan-out: a postback the affiliate switched off, or
    # a conversion no longer in its scope (rejected meanwhile, say), is not called on a retry.
    postback = (
        postbacks_for_conversion(conversion).filter(pk=postback_id).first()
        if conversion is not None
        else None
    )
    if conversion is None or postback is None:
        logger.warning(
            "postback %s / conversion %s gone or out of scope; dropping", postback_id, conversion_id
        )
        return None
    done = OutboundPostbackDelivery.objects.filter(
        conversion=conversion, postback=postback, conversion_status=conversion.status
    )
    if done.filter(succeeded=True).exists():
        return None
    url = macro_render(postback.url, postback_macros(conversion))
    delivery = OutboundPostbackDelivery(
        conversion=conversion,
        postback=postback,
        conversion_status=conversion.status,
        attempt=done.count() + 1,
        url=url[:4000],
    )
    try:
        response = safe_request(
            "GET", url, timeout=settings.OUTBOUND_POSTBACK_TIMEOUT_SECONDS, max_body=1024
        )
    except UnsafeUrl as refused:
        delivery.error = f"refused: {refused.code}"
    except (OSError, http.client.HTTPException, ValueError) as failure:
        # ValueError: http.client refuses a request line it cannot encode (non-ASCII in the path).
        delivery.error = f"{type(failure).__name__}: {failure}"[:255]
    else:
        delivery.http_status = response.status
        delivery.latency_ms = response.latency_ms
        delivery.response_body = response.body[:1024].replace("\x00", "")
        delivery.succeeded = 200 <= response.status < 300
    try:
        with transaction.atomic():
            delivery.save()
    except IntegrityError:
        return None  # a concurrent run already recorded the success
    return delivery
