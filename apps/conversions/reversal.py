"""`/postback/reversal`: the advertiser takes a conversion back, by conversion id, click id or
order id (plus goal when the click or order has several).

Authenticated like a postback (token, IP allowlist, HMAC) against the advertiser that owns the
conversion, and always with a proof of the sender (a token, a signature or an allowlisted IP):
conversion ids are sequential, so "no token needed" (an advertiser's setting for its conversion
postbacks) does not extend to taking them back from anywhere. No scrub window applies: a refund
or a chargeback may come months later. Idempotent: reversing an already reversed or rejected
conversion answers `duplicate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.advertisers.models import Advertiser
from apps.advertisers.selectors import advertiser_for_token
from apps.common.text import digits_int
from apps.conversions.models import Conversion, StatusChangeSource
from apps.conversions.services import (
    InboundRequest,
    PostbackDecision,
    PostbackRejected,
    advertiser_authenticate,
    order_id_valid,
    postback_handle,
    token_like,
)
from apps.conversions.status import StatusChangeRefused, conversion_reverse
from apps.offers.models import Goal


def _token_advertiser(token: str) -> Advertiser | None:
    """The advertiser a token belongs to, found before any conversion is looked up: a wrong token
    then learns nothing about which conversions exist."""
    if not token:
        return None
    advertiser = advertiser_for_token(token)
    if advertiser is None:
        raise PostbackRejected("bad_token", http_status=403)
    return advertiser


def _candidates(params: Mapping[str, str], advertiser: Advertiser | None) -> QuerySet[Conversion]:
    conversions = Conversion.objects.select_related("offer__advertiser", "goal")
    if advertiser is not None:
        conversions = conversions.filter(offer__advertiser=advertiser)
    conversion_id, click_id, order_id = (
        params["conversion_id"],
        params["click_id"],
        params["order_id"],
    )
    if order_id and not order_id_valid(order_id):
        raise PostbackRejected("invalid_order_id")
    if conversion_id:
        pk = digits_int(conversion_id)
        if pk is None:
            raise PostbackRejected("unknown_conversion", http_status=404)
        conversions = conversions.filter(pk=pk)
    elif click_id:
        if not token_like(click_id):
            raise PostbackRejected("unknown_conversion", http_status=404)
        conversions = conversions.filter(click_id=click_id)
        if order_id:
            conversions = conversions.filter(order_id=order_id)
    elif order_id:
        # Order ids are the advertiser's own: only theirs are searched.
        if advertiser is None:
            raise PostbackRejected("bad_token", http_status=403)
        conversions = conversions.filter(order_id=order_id)
    else:
        raise PostbackRejected("missing_conversion_reference")
    if params["goal"]:
        if not token_like(params["goal"]):
            raise PostbackRejected("unknown_goal")
        # By code, or by id as HasOffers and Everflow send it (goal_id, adv_event_id…), when the
        # conversion's offer has no goal with that code (as in offers.selectors.goal_for_code).
        by_goal = Q(goal__code=params["goal"])
        goal_pk = digits_int(params["goal"]) if params["goal_by_id"] else None
        if goal_pk is not None:
            code_on_offer = Goal.objects.filter(
                offer_id=OuterRef("goal__offer_id"), code=params["goal"]
            )
            by_goal |= Q(Q(goal_id=goal_pk), ~Exists(code_on_offer))
        conversions = conversions.filter(by_goal)
    return conversions


def reversal_record(
    *,
    params: Mapping[str, str],
    request_ip: str | None,
    now: datetime,
    request: InboundRequest | None = None,
) -> tuple[Conversion, bool]:
    token_advertiser = _token_advertiser(params["token"])
    found = list(_candidates(params, token_advertiser)[:2])
    if not found:
        raise PostbackRejected("unknown_conversion", http_status=404)
    try:
        owner = found[0].offer.advertiser
        signed = advertiser_authenticate(
            advertiser=owner, token=params["token"], ip=request_ip, request=request, now=now
        )
        if token_advertiser is None and not signed and not owner.ip_allowlist:
            raise PostbackRejected("bad_token", http_status=403)
    except PostbackRejected as rejected:
        if token_advertiser is None:
            # No token: the caller is not known to own what was found, so it hears what it
            # would hear for an id that does not exist (ids are sequential).
            raise PostbackRejected("unknown_conversion", http_status=404) from rejected
        raise
    if len(found) > 1:
        raise PostbackRejected("ambiguous_conversion", http_status=409)
    reason = params["reason"] or "reversed by the advertiser's reversal postback"
    try:
        return conversion_reverse(
            conversion_id=found[0].pk,
            source=StatusChangeSource.REVERSAL_POSTBACK,
            now=now,
            reason=reason,
            advertiser_id=found[0].offer.advertiser_id,
        )
    except StatusChangeRefused as refused:
        raise PostbackRejected(refused.code, http_status=refused.http_status) from refused


def reversal_process(
    *,
    raw: Mapping[str, str],
    request_ip: str | None,
    method: str,
    path: str,
    now: datetime,
    request: InboundRequest | None = None,
) -> PostbackDecision:
    """Handle one /postback/reversal call and write it to the inbound log, whatever happens."""
    return postback_handle(
        lambda params, _log: reversal_record(
            params=params, request_ip=request_ip, now=now, request=request
        ),
        raw=raw,
        request_ip=request_ip,
        method=method,
        path=path,
        request=request,
    )
