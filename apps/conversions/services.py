"""Conversions: attribute, authenticate, de-duplicate, price, score and store a postback."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import redis
from django.db import IntegrityError, transaction

from apps.accounts.services import secret_matches
from apps.commissions.tasks import accrue_for_conversion
from apps.common.errors import DomainError
from apps.common.money import InvalidAmount, amount_parse, money_round
from apps.common.net import ip_in_allowlist, ip_parse
from apps.common.redis import redis_client
from apps.common.text import text_clean
from apps.conversions.models import Conversion, InboundPostbackLog, PostbackResult
from apps.conversions.params import (
    MAX_ID_LENGTH,
    STATUS_ALIASES,
    params_for_log,
    postback_params_parse,
)
from apps.conversions.tasks import fire_affiliate_postbacks
from apps.offers.caps import cap_counter_key
from apps.offers.models import CapMetric, ConversionStatus, Goal, PayoutType
from apps.offers.selectors import goal_for_code
from apps.quality.services import quality_fingerprint_record, quality_score, quality_status
from apps.tracking import catalog, click_store
from apps.tracking.enrichment import country_for_ip
from apps.tracking.models import Click

logger = logging.getLogger(__name__)

_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _token_like(value: str) -> bool:
    """Click ids and goal codes are URL-safe tokens; anything else cannot match one."""
    return bool(_TOKEN_LIKE.fullmatch(value))


class PostbackRejected(DomainError):
    pass


@dataclass(frozen=True)
class PostbackDecision:
    result: PostbackResult
    http_status: int
    conversion: Conversion | None = None
    reason: str = ""

    def as_json(self) -> dict[str, object]:
        conversion = self.conversion
        return {
            "result": self.result.value,
            "conversion_id": conversion.pk if conversion else None,
            "status": conversion.status if conversion else None,
            "reason": self.reason or None,
        }


def _advertiser_authenticate(*, click: Click, token: str, ip: str | None) -> None:
    advertiser = click.offer.advertiser
    if advertiser.ip_allowlist and not ip_in_allowlist(ip, advertiser.ip_allowlist):
        raise PostbackRejected("ip_not_allowed", http_status=403)
    if advertiser.require_token or token:
        if not advertiser.postback_token_hash or not token:
            raise PostbackRejected("bad_token", http_status=403)
        if not secret_matches(token, advertiser.postback_token_hash):
            raise PostbackRejected("bad_token", http_status=403)


def _amount_for(
    *, goal: Goal, rate: Decimal, sale_amount: Decimal | None, currency: str
) -> Decimal:
    if goal.payout_type == PayoutType.PERCENT:
        if sale_amount is None:
            raise PostbackRejected("amount_required")
        return money_round(sale_amount * rate / Decimal(100), currency)
    return money_round(rate, currency)


def _status_for(*, raw: str, goal: Goal) -> ConversionStatus:
    if not raw:
        return ConversionStatus(goal.default_status)
    status = STATUS_ALIASES.get(raw.lower())
    if status is None:
        raise PostbackRejected("invalid_status")
    return status


def _click_snapshot(click: Click) -> dict[str, object]:
    """What a conversion keeps of its click (the click's partition is dropped one day)."""
    return {
        "click_id": click.click_id,
        "click_created_at": click.created_at,
        "click_ip": click.ip,
        "click_country": click.country,
        "click_is_bot": click.is_bot,
        **{f"sub{n}": getattr(click, f"sub{n}") for n in range(1, 6)},
        "source_id": click.source_id,
        "aff_click_id": click.aff_click_id,
        "creative_id": click.creative_id,
    }


def _conversion_caps_exceeded(conversion: Conversion, *, now: datetime) -> bool:
    """Count the conversion against its offer's conversion caps (Redis, real time); True when
    one of them was already full. Recorded either way; an over-cap conversion is not paid."""
    offer = catalog.offer_snapshot(conversion.offer_id)
    if offer is None:
        return False
    rules = [
        rule
        for rule in offer.caps
        if rule.metric == CapMetric.CONVERSIONS
        and rule.affiliate_id in (None, conversion.affiliate_id)
        and rule.goal_id in (None, conversion.goal_id)
    ]
    if not rules:
        return False
    pipe = redis_client().pipeline(transaction=False)
    for rule in rules:
        key, ttl = cap_counter_key(
            cap_id=rule.cap_id, period=rule.period, now=now, timezone=offer.timezone
        )
        pipe.incr(key)
        if ttl:
            pipe.expire(key, ttl, nx=True)
    try:
        results = pipe.execute()
    except redis.RedisError:
        logger.warning("redis unavailable: conversion %s not counted against caps", conversion.pk)
        return False
    counts = [value for value in results if not isinstance(value, bool)]
    return any(count > rule.limit for count, rule in zip(counts, rules, strict=True))


def conversion_record(
    *, params: Mapping[str, str], request_ip: str | None, now: datetime
) -> tuple[Conversion, bool]:
    """Record the conversion a postback reports. Returns (conversion, created).

    A retry of the same postback (same click, goal and order id) returns the first conversion and
    created=False; the database's unique constraint decides, so concurrent retries are safe.
    """
    click_id = params["click_id"]
    if not click_id:
        raise PostbackRejected("missing_click_id")
    if not _token_like(click_id):
        raise PostbackRejected("unknown_click", http_status=404)
    click = click_store.click_get(click_id=click_id)
    if click is None:
        raise PostbackRejected("unknown_click", http_status=404)
    _advertiser_authenticate(click=click, token=params["token"], ip=request_ip)
    offer = click.offer
    if now - click.created_at > timedelta(days=offer.attribution_window_days):
        raise PostbackRejected("outside_attribution_window")
    if params["goal"] and not _token_like(params["goal"]):
        raise PostbackRejected("unknown_goal")
    goal = goal_for_code(offer=offer, code=params["goal"])
    if goal is None:
        raise PostbackRejected("unknown_goal")
    order_id = params["order_id"]
    if len(order_id) > MAX_ID_LENGTH or "\x00" in order_id:
        raise PostbackRejected("invalid_order_id")
    sale_amount = None
    if params["amount"]:
        try:
            sale_amount = amount_parse(params["amount"])
        except InvalidAmount as exc:
            raise PostbackRejected("invalid_amount") from exc
    status = _status_for(raw=params["status"], goal=goal)
    payout = _amount_for(
        goal=goal, rate=goal.payout, sale_amount=sale_amount, currency=offer.currency
    )
    revenue = _amount_for(
        goal=goal, rate=goal.revenue, sale_amount=sale_amount, currency=offer.currency
    )
    parsed_ip = ip_parse(params["ip"])
    shopper_ip = str(parsed_ip) if parsed_ip else None
    country = country_for_ip(shopper_ip)
    quality = quality_score(
        click=click,
        offer=offer,
        goal=goal,
        conversion_ip=shopper_ip,
        conversion_country=country,
        email=params["email"],
        phone=params["phone"],
        now=now,
    )
    # The score's band may hold (pending, not silently paid) or reject; it never approves.
    status = quality_status(status=status, action=quality.action)

    existing = Conversion.objects.filter(click_id=click_id, goal=goal, order_id=order_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            conversion = Conversion.objects.create(
                **_click_snapshot(click),
                offer=offer,
                affiliate_id=click.affiliate_id,
                goal=goal,
                order_id=order_id,
                status=status,
                currency=offer.currency,
                sale_amount=sale_amount,
                payout=payout,
                revenue=revenue,
                ip=shopper_ip,
                country=country,
                quality_score=quality.score,
                quality_reasons=quality.reasons,
                quality_evidence=quality.evidence,
                quality_rule_version=quality.rule_version,
                adv1=params["adv1"],
                adv2=params["adv2"],
                adv3=params["adv3"],
                adv4=params["adv4"],
                adv5=params["adv5"],
                created_at=now,
            )
            quality_fingerprint_record(conversion=conversion, result=quality)
            if _conversion_caps_exceeded(conversion, now=now):
                conversion.is_over_cap = True
                conversion.save(update_fields=["is_over_cap"])
            transaction.on_commit(lambda: conversion_side_effects_enqueue(conversion.pk))
    except IntegrityError:
        # A concurrent retry of the same postback won the race: answer with its conversion.
        return Conversion.objects.get(click_id=click_id, goal=goal, order_id=order_id), False
    return conversion, True


def conversion_side_effects_enqueue(conversion_id: int) -> None:
    """After commit: tell the affiliate and accrue the commission. A broker outage must not fail
    the postback; the commission beat job catches up on anything missed here."""
    for task in (fire_affiliate_postbacks, accrue_for_conversion):
        try:
            task.delay(conversion_id)
        except Exception:
            logger.exception("could not enqueue %s for conversion %s", task.name, conversion_id)


def postback_process(
    *, raw: Mapping[str, str], request_ip: str | None, method: str, path: str, now: datetime
) -> PostbackDecision:
    """Handle one /postback call end to end and write it to the inbound log, whatever happens."""
    params = postback_params_parse(raw)
    try:
        conversion, created = conversion_record(params=params, request_ip=request_ip, now=now)
    except PostbackRejected as rejection:
        decision = PostbackDecision(
            PostbackResult.REJECTED, rejection.http_status, reason=rejection.code
        )
    else:
        decision = PostbackDecision(
            PostbackResult.ACCEPTED if created else PostbackResult.DUPLICATE, 200, conversion
        )
    postback_log_write(
        params=params, raw=raw, request_ip=request_ip, method=method, path=path, decision=decision
    )
    return decision


def postback_log_write(
    *,
    params: Mapping[str, str],
    raw: Mapping[str, str],
    request_ip: str | None,
    method: str,
    path: str,
    decision: PostbackDecision,
) -> InboundPostbackLog:
    conversion = decision.conversion
    advertiser_id = None
    if conversion is not None:
        advertiser_id = conversion.offer.advertiser_id
    elif _token_like(params.get("click_id", "")):
        click = click_store.click_get(click_id=params["click_id"])
        advertiser_id = click.offer.advertiser_id if click else None
    return InboundPostbackLog.objects.create(
        method=method[:8],
        path=path[:64],
        ip=request_ip,
        params=params_for_log(raw),
        click_id=text_clean(params.get("click_id"), 64),
        order_id=text_clean(params.get("order_id"), 255),
        advertiser_id=advertiser_id,
        result=decision.result,
        reason=decision.reason,
        http_status=decision.http_status,
        conversion=conversion,
    )
