"""Conversions: attribute, authenticate, de-duplicate, price, score and store a postback."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import redis

from apps.accounts.services import secret_matches
from apps.advertisers.models import Advertiser
from apps.advertisers.selectors import advertiser_for_token
from apps.advertisers.signing import SignatureRejected, advertiser_signature_check
from apps.common.db import (
    fetchone_prepared,
    follower_insert,
    insert_unless_conflict,
    insert_with_followers,
    model_columns,
    model_from_row,
    model_new,
)
from apps.common.errors import DomainError
from apps.common.money import InvalidAmount, amount_parse
from apps.common.net import ip_in_allowlist, ip_parse
from apps.common.redis import redis_client
from apps.common.text import digits_int, text_clean
from apps.conversions import outbound
from apps.conversions.models import (
    Conversion,
    ConversionMethod,
    InboundPostbackLog,
    PostbackResult,
    StatusChangeSource,
)
from apps.conversions.params import (
    MAX_ID_LENGTH,
    STATUS_ALIASES,
    body_for_log,
    headers_for_log,
    params_for_log,
    postback_params_parse,
)
from apps.conversions.status import (
    StatusChangeRefused,
    conversion_status_change,
    status_move_allowed,
)
from apps.offers.caps import cap_counter_key
from apps.offers.models import CapMetric, ConversionStatus, CouponCode, Goal, Offer, PixelMethod
from apps.offers.pricing import AmountRequired, payout_rule, revenue_rule
from apps.offers.selectors import custom_payout_for, goal_for_code
from apps.quality.leads import email_key
from apps.quality.selectors import quality_profile_for_offer
from apps.quality.services import (
    quality_fingerprint_follower,
    quality_score,
    quality_status,
)
from apps.quality.signals import History, history_from_values, history_with_click
from apps.tracking import catalog, click_store
from apps.tracking.enrichment import country_for_ip
from apps.tracking.models import Click

logger = logging.getLogger(__name__)

_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def token_like(value: str) -> bool:
    """Click ids and goal codes are URL-safe tokens; anything else cannot match one."""
    return bool(_TOKEN_LIKE.fullmatch(value))


class PostbackRejected(DomainError):
    pass


# Conversions a shopper's browser reports (pixels), not the advertiser's server.
BROWSER_METHODS = frozenset(ConversionMethod(method) for method in PixelMethod.values)


@dataclass(frozen=True)
class InboundRequest:
    """The HTTP request a postback came in, as the security checks need it (HMAC signatures are
    computed over the raw request, not over parsed parameters)."""

    method: str = "GET"
    path: str = "/postback"
    query_string: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


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


def advertiser_authenticate(
    *,
    advertiser: Advertiser,
    token: str,
    ip: str | None,
    request: InboundRequest | None,
    now: datetime,
) -> bool:
    """Raise PostbackRejected unless the call is the advertiser's; returns whether it was signed
    (HMAC) rather than, or as well as, holding the token."""
    if advertiser.ip_allowlist and not ip_in_allowlist(ip, advertiser.ip_allowlist):
        raise PostbackRejected("ip_not_allowed", http_status=403)
    request = request or InboundRequest()
    try:
        signed = advertiser_signature_check(
            advertiser=advertiser,
            method=request.method,
            path=request.path,
            query_string=request.query_string,
            headers=request.headers,
            body=request.body,
            now=now,
        )
    except SignatureRejected as rejected:
        raise PostbackRejected(rejected.code, http_status=403) from rejected
    if signed and not token:
        return True  # a valid signature proves the sender better than a token would
    if advertiser.require_token or token:
        if not advertiser.postback_token_hash or not token:
            raise PostbackRejected("bad_token", http_status=403)
        if not secret_matches(token, advertiser.postback_token_hash):
            raise PostbackRejected("bad_token", http_status=403)
    return signed


def _log_without_click(log: InboundPostbackLog | None) -> None:
    """The browser's click on a pixel's log row is dropped when it may be another advertiser's
    (the row goes to the advertiser whose page the pixel is on): its id and its logged param."""
    if log is not None:
        log.click_id = ""
        log.params.pop("click_id", None)


def pixel_precheck(params: Mapping[str, str], log: InboundPostbackLog | None) -> Offer:
    """What a pixel must pass before its click is read; returns the offer it names, whose
    advertiser's page it is on (the log row is that advertiser's).

    A pixel's URL is public, so it carries no secret: any advertiser's postback token in one is
    refused, to be noticed (the row is the token's advertiser's, without the browser's click) and
    rotated before a reader of the page uses it on /postback. It names its offer (`offer_id`,
    Everflow's `oid`), as a pixel snippet does: the browser's latest click may be another's."""
    exposed = advertiser_for_token(params["token"])
    if exposed is not None:
        _log_without_click(log)
        if log is not None:
            log.advertiser_id = exposed.pk
        raise PostbackRejected("token_exposed", http_status=403)
    offer_id = digits_int(params["offer_id"])
    if offer_id is None:
        raise PostbackRejected("missing_offer_id")
    named = catalog.offer_with_advertiser(offer_id)
    if named is None:
        _log_without_click(log)
        raise PostbackRejected("unknown_offer", http_status=404)
    if log is not None:
        log.advertiser_id = named.advertiser_id
    return named


def pixel_authenticate(
    *, click: Click, named: Offer, via: ConversionMethod, log: InboundPostbackLog | None
) -> None:
    """Raise PostbackRejected unless the click is of the offer the pixel names, or was served by
    that offer's fallback offer of the same advertiser, and the offer that served it takes this
    kind of pixel (its settings and goals apply: the conversion is its). The click cookie is a
    pixel's only proof: an advertiser that asks its server's postbacks to be signed or to come
    from its IPs gets no pixels (a browser can do neither)."""
    offer = click.offer
    served_for_named = named.pk == click.origin_offer_id and (
        offer.advertiser_id == named.advertiser_id  # a fallback offer may have moved since
    )
    if named.pk != click.offer_id and not served_for_named:
        _log_without_click(log)
        raise PostbackRejected("click_of_another_offer")
    if via not in offer.pixel_methods:
        raise PostbackRejected("pixel_not_enabled", http_status=403)
    if offer.advertiser.require_signature:
        raise PostbackRejected("signature_required", http_status=403)
    if offer.advertiser.ip_allowlist:
        raise PostbackRejected("ip_not_allowed", http_status=403)


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


def _conversion_caps_count(conversion: Conversion, *, now: datetime) -> tuple[bool, list[str]]:
    """Count the conversion about to be inserted against its offer's conversion caps (Redis,
    real time). Returns whether one of them was already full (the conversion is recorded either
    way; an over-cap one is not paid) and the counter keys, for _conversion_caps_uncount."""
    offer = catalog.offer_snapshot(conversion.offer_id)
    if offer is None:
        return False, []
    rules = [
        rule
        for rule in offer.caps
        if rule.metric == CapMetric.CONVERSIONS
        and rule.affiliate_id in (None, conversion.affiliate_id)
        and rule.goal_id in (None, conversion.goal_id)
    ]
    if not rules:
        return False, []
    pipe = redis_client().pipeline(transaction=False)
    keys = []
    for rule in rules:
        key, ttl = cap_counter_key(
            cap_id=rule.cap_id, period=rule.period, now=now, timezone=offer.timezone
        )
        keys.append(key)
        pipe.incr(key)
        if ttl:
            pipe.expire(key, ttl, nx=True)
    try:
        results = pipe.execute()
    except redis.RedisError:
        logger.warning("redis unavailable: conversion on offer %s not counted", conversion.offer_id)
        return False, []
    counts = [value for value in results if not isinstance(value, bool)]
    return any(count > rule.limit for count, rule in zip(counts, rules, strict=True)), keys


def _conversion_caps_uncount(keys: list[str]) -> None:
    """Take back the count of a conversion that was not inserted after all (a concurrent retry
    inserted it first)."""
    if not keys:
        return
    pipe = redis_client().pipeline(transaction=False)
    for key in keys:
        pipe.decr(key)
    try:
        pipe.execute()
    except redis.RedisError:
        logger.warning("redis unavailable: %s cap counters left one too high", len(keys))


@dataclass(frozen=True)
class Attribution:
    """Who gets the conversion: a click, or a coupon code's affiliate (then `click` is a stand-in
    with no id and no time, carrying the offer and affiliate)."""

    click: Click
    coupon_code: str = ""
    converted: Converted | None = None  # read with the click; None when not
    history: History | None = None  # the lead-quality history, read with the click; None when not


@dataclass(frozen=True)
class Converted:
    """What the click had already converted when it was read: the goals (each once, however
    many rebills), and whether a conversion of the postback's order id is among them."""

    goals: tuple[int, ...]
    order_seen: bool


# Read with the click itself (click_store.click_get_with): on a new conversion (the busiest
# path) that answers "this order again?" and "the goal already converted?" with no query of its
# own. Both scan only the click's conversions, on the (click_id, goal_id, order_id) unique
# index: a test of order_id = %s of its own would let the planner pick the order_id index,
# which for the empty order id (postbacks without one) holds every such conversion.
_CONVERTED_SQL = """,
  ARRAY(SELECT DISTINCT goal_id FROM conversions_conversion
        WHERE click_id = tracking_click.click_id),
  coalesce((SELECT bool_or(order_id = %s) FROM conversions_conversion
            WHERE click_id = tracking_click.click_id), false)"""


def _attribute(
    params: Mapping[str, str],
    *,
    shopper_ip: str | None,
    email_hash: str,
    now: datetime,
    from_browser: bool,
) -> Attribution:
    """The click (or coupon) the conversion belongs to. A pixel's only proof is the click
    cookie, so a pixel never converts by coupon code: codes are public."""
    click_id = params["click_id"]
    if not click_id and params["coupon_code"] and not from_browser:
        return _attribute_coupon(code=params["coupon_code"], offer_id=params["offer_id"])
    if not click_id:
        raise PostbackRejected("missing_click_id")
    if not token_like(click_id):
        raise PostbackRejected("unknown_click", http_status=404)
    order_id = params["order_id"]
    if not order_id_valid(order_id):  # refused later, once the click and its advertiser are known
        click = click_store.click_get(click_id=click_id)
        if click is None:
            raise PostbackRejected("unknown_click", http_status=404)
        return Attribution(click=click)
    also, also_params = _CONVERTED_SQL, [order_id]
    # The quality history too, when it depends on the click alone: the postback brings no
    # shopper IP (the click's is compared) and no phone (its hash depends on the click's country).
    with_history = shopper_ip is None and not params["phone"].strip()
    if with_history:
        history_sql, history_params = history_with_click(email_hash=email_hash, now=now)
        also, also_params = also + history_sql, also_params + history_params
    click, extra = click_store.click_get_with(click_id=click_id, also=also, also_params=also_params)
    if click is None:
        raise PostbackRejected("unknown_click", http_status=404)
    if extra is None:  # not in PostgreSQL yet (the buffer's copy)
        return Attribution(click=click)
    history = None
    # A click stored before clicks kept their device key has none: its history is read apart.
    if with_history and (click.ua_ip_hash or not click.ip):
        history = history_from_values(extra[2:])
    converted = Converted(goals=tuple(extra[0]), order_seen=extra[1])
    return Attribution(click=click, converted=converted, history=history)


def order_id_valid(order_id: str) -> bool:
    return len(order_id) <= MAX_ID_LENGTH and "\x00" not in order_id


def _attribute_coupon(*, code: str, offer_id: str) -> Attribution:
    normalised = code.strip().upper()
    if len(normalised) > 64 or not normalised.isprintable():  # no NUL, no lone surrogate
        raise PostbackRejected("unknown_coupon", http_status=404)
    coupons = CouponCode.objects.select_related("offer__advertiser").filter(
        code=normalised, is_active=True
    )
    if offer_id:
        offer_pk = digits_int(offer_id)
        if offer_pk is None:
            raise PostbackRejected("unknown_coupon", http_status=404)
        coupons = coupons.filter(offer_id=offer_pk)
    found = list(coupons[:2])
    if not found:
        raise PostbackRejected("unknown_coupon", http_status=404)
    if len(found) > 1:
        # The same code on two offers: the advertiser must say which (offer_id).
        raise PostbackRejected("ambiguous_coupon", http_status=409)
    coupon = found[0]
    stand_in = Click(  # type: ignore[misc]  # no click, so no click time (created_at)
        click_id="",
        offer=coupon.offer,
        affiliate_id=coupon.affiliate_id,
        created_at=None,
        ip=None,
        country="",
        user_agent="",
    )
    return Attribution(click=stand_in, coupon_code=coupon.code)


def _repeat_postback(
    existing: Conversion,
    *,
    sale_amount: Decimal | None,
    raw_status: str,
    now: datetime,
) -> tuple[Conversion, bool]:
    """The same conversion reported again (a retry, or the advertiser updating its status).

    A different amount for the same order is a conflict: refused, the original stands. An explicit
    status may move a pending conversion forward (Affise-style status updates), unless the quality
    engine holds it for review; anything else is a plain duplicate with the same answer."""
    if sale_amount is not None and existing.sale_amount != sale_amount:
        raise PostbackRejected("order_conflict", http_status=409)
    wanted = STATUS_ALIASES.get(raw_status.lower()) if raw_status else None
    if (
        wanted is not None
        and existing.status == ConversionStatus.PENDING
        and status_move_allowed(old=existing.status, new=wanted, source=StatusChangeSource.POSTBACK)
    ):
        profile = quality_profile_for_offer(offer=existing.offer)
        wanted = quality_status(status=wanted, action=profile.action_for(existing.quality_score))
        if wanted != existing.status:
            try:
                existing, _ = conversion_status_change(
                    conversion_id=existing.pk,
                    new_status=wanted,
                    source=StatusChangeSource.POSTBACK,
                    now=now,
                    reason="status sent again by the advertiser's postback",
                )
            except StatusChangeRefused as refused:  # moved on meanwhile (staff, a reversal)
                raise PostbackRejected(refused.code, http_status=refused.http_status) from refused
    return existing, False


# The conversion this order already made on the click and goal, else any on them (order ids
# equal first): both "a retry" and "the goal already converted" from one index lookup, with the
# whole row, so a retry needs no second query.
_CONVERSION_COLUMNS, _ = model_columns(Conversion)
_SAME_GOAL_SQL = f"""
SELECT {_CONVERSION_COLUMNS}, order_id = %s FROM conversions_conversion
WHERE click_id = %s AND goal_id = %s
ORDER BY order_id = %s DESC LIMIT 1
"""  # noqa: S608 - the columns come from the model


def _same_goal(*, order_id: str, click_id: str, goal_id: int) -> tuple[Conversion | None, bool]:
    """The conversion this order already made on the click and goal (a retry), and whether the
    goal has any conversion on the click at all."""
    row = fetchone_prepared(_SAME_GOAL_SQL, [order_id, click_id, goal_id, order_id])
    if row is None:
        return None, False
    *columns, same_order = row
    if not same_order:
        return None, True
    conversion = model_from_row(Conversion, columns)
    offer = catalog.offer_with_advertiser(conversion.offer_id)  # shared, read-only
    if offer is not None:
        conversion.offer = offer
    return conversion, True


def _required_goal_check(*, goal: Goal, click_id: str) -> None:
    """A goal that requires another (a sale after its lead, an upsell after its sale) is only
    accepted after the same click converted on that one."""
    if not click_id or goal.requires_goal_id is None:
        return
    if not Conversion.objects.filter(
        click_id=click_id,
        goal_id=goal.requires_goal_id,
        status__in=[ConversionStatus.APPROVED, ConversionStatus.PENDING],
    ).exists():
        raise PostbackRejected("required_goal_missing", http_status=409)


def conversion_record(
    *,
    params: Mapping[str, str],
    request_ip: str | None,
    now: datetime,
    request: InboundRequest | None = None,
    via: ConversionMethod = ConversionMethod.POSTBACK,
    log: InboundPostbackLog | None = None,
) -> tuple[Conversion, bool]:
    """Record the conversion a postback reports. Returns (conversion, created).

    A retry of the same postback (same click, goal and order id) returns the first conversion and
    created=False; the database's unique constraints decide, so concurrent retries are safe.

    A new conversion is written in one statement, atomic on its own: the conversion, its lead
    fingerprint, its outbox rows and, when given, the call's inbound `log` row (which then gets
    its primary key); the outbox rows are kicked after it commits.
    """
    # Each once: the click's read may need them (the quality history), and the score does.
    parsed_ip = ip_parse(params["ip"])
    shopper_ip = str(parsed_ip) if parsed_ip else None
    email_hash = email_key(params["email"])
    from_browser = via in BROWSER_METHODS
    named_offer = pixel_precheck(params, log) if from_browser else None
    attribution = _attribute(
        params, shopper_ip=shopper_ip, email_hash=email_hash, now=now, from_browser=from_browser
    )
    click = attribution.click
    offer = click.offer
    if named_offer is not None:
        pixel_authenticate(click=click, named=named_offer, via=via, log=log)
    else:
        if log is not None:  # whatever is decided from here on, the click was read once already
            log.advertiser_id = offer.advertiser_id
        advertiser_authenticate(
            advertiser=offer.advertiser,
            token=params["token"],
            ip=request_ip,
            request=request,
            now=now,
        )
    if params["goal"] and not token_like(params["goal"]):
        raise PostbackRejected("unknown_goal")
    goal = goal_for_code(offer=offer, code=params["goal"], by_id=bool(params["goal_by_id"]))
    if goal is None:
        raise PostbackRejected("unknown_goal")
    order_id = params["order_id"]
    if not order_id_valid(order_id):
        raise PostbackRejected("invalid_order_id")
    if attribution.coupon_code and not order_id:
        # Without a click, the order id is the only de-duplication key.
        raise PostbackRejected("order_id_required")
    sale_amount = None
    if params["amount"]:
        try:
            sale_amount = amount_parse(params["amount"])
        except InvalidAmount as exc:
            raise PostbackRejected("invalid_amount") from exc
    status = _status_for(raw=params["status"], goal=goal)
    # A pixel's URL is public on the advertiser's page and any browser that clicked can call it
    # with what it likes: its status may hold or reject, never approve what the goal leaves
    # pending, and never moves a conversion already recorded.
    if from_browser and status == ConversionStatus.APPROVED:
        status = ConversionStatus(goal.default_status)
    repeat_status = "" if from_browser else params["status"]

    # "This order again" (a retry) and "the goal already converted on this click"; a
    # concurrent retry that commits in between is caught by the constraints below.
    converted = attribution.converted
    if converted is None or converted.order_seen:
        existing, goal_converted = _same_goal(
            order_id=order_id, click_id=click.click_id, goal_id=goal.pk
        )
    else:
        existing, goal_converted = None, goal.pk in converted.goals
    if existing is not None:
        return _repeat_postback(
            existing, sale_amount=sale_amount, raw_status=repeat_status, now=now
        )
    # After the retry check: a retry of a recorded conversion gets the same answer however many
    # days later it comes, even once the click is past its attribution window.
    if click.created_at is not None and now - click.created_at > timedelta(
        days=offer.attribution_window_days
    ):
        raise PostbackRejected("outside_attribution_window")
    if click.click_id and goal_converted and not goal.is_repeatable:
        raise PostbackRejected("goal_already_converted", http_status=409)
    _required_goal_check(goal=goal, click_id=click.click_id)

    custom = custom_payout_for(
        offer_id=offer.pk, affiliate_id=click.affiliate_id, goal_id=goal.pk, country=click.country
    )
    try:
        payout = payout_rule(goal, custom).apply(sale_amount=sale_amount, currency=offer.currency)
        revenue = revenue_rule(goal).apply(sale_amount=sale_amount, currency=offer.currency)
    except AmountRequired as exc:
        raise PostbackRejected("amount_required") from exc
    country = country_for_ip(shopper_ip)
    quality = quality_score(
        click=click,
        offer=offer,
        goal=goal,
        conversion_ip=shopper_ip,
        conversion_country=country,
        email=params["email"],
        email_hash=email_hash,
        phone=params["phone"],
        now=now,
        history=attribution.history,
    )
    # The score's band may hold (pending, not silently paid) or reject; it never approves.
    status = quality_status(status=status, action=quality.action)

    conversion = model_new(
        Conversion,
        **(_click_snapshot(click) if click.click_id else {}),
        offer=offer,
        affiliate_id=click.affiliate_id,
        goal=goal,
        goal_once=not goal.is_repeatable,
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
        method=ConversionMethod.COUPON if attribution.coupon_code else via,
        coupon_code=attribution.coupon_code,
        created_at=now,
    )
    conversion.is_over_cap, cap_keys = _conversion_caps_count(conversion, now=now)
    followers = [
        quality_fingerprint_follower(conversion=conversion, result=quality),
        outbound.outbox_follower(now=now),
    ]
    if log is not None:
        postback_log_decide(log, PostbackDecision(PostbackResult.ACCEPTED, 200, conversion))
        followers.append(follower_insert(log, link="conversion"))
    written = insert_with_followers(conversion, followers)
    if written is not None:
        _fingerprint_id, outbox_ids, *log_id = written  # the followers' results, in order
        outbound.outbox_kick(outbox_ids)
        if log is not None:
            log.pk, log.conversion_id = log_id[0], conversion.pk
        return conversion, True
    _conversion_caps_uncount(cap_keys)
    # A concurrent retry of the same postback won the race (ON CONFLICT waited for it to commit):
    # answer with its conversion. None for this order id: another order took the goal's one
    # conversion.
    existing, _ = _same_goal(order_id=order_id, click_id=click.click_id, goal_id=goal.pk)
    if existing is None:
        raise PostbackRejected("goal_already_converted", http_status=409)
    return _repeat_postback(existing, sale_amount=sale_amount, raw_status=repeat_status, now=now)


def postback_decide(record: Callable[[], tuple[Conversion, bool]]) -> PostbackDecision:
    """Run one recording step (a conversion, a reversal) and turn its outcome into the answer:
    accepted when it changed something, duplicate when it had already been done, or rejected."""
    try:
        conversion, changed = record()
    except PostbackRejected as rejection:
        return PostbackDecision(
            PostbackResult.REJECTED, rejection.http_status, reason=rejection.code
        )
    return PostbackDecision(
        PostbackResult.ACCEPTED if changed else PostbackResult.DUPLICATE, 200, conversion
    )


def postback_handle(
    record: Callable[[Mapping[str, str], InboundPostbackLog], tuple[Conversion, bool]],
    *,
    raw: Mapping[str, str],
    request_ip: str | None,
    method: str,
    path: str,
    request: InboundRequest | None = None,
) -> PostbackDecision:
    """Parse a call, run its recording step (`record(params, log)`) and write the call to the
    inbound log with the decision, whatever it is. A step that creates a conversion may write
    the log row in the same statement (the row then has its primary key); otherwise it is
    written here. No enclosing transaction: every write a step makes is atomic on its own, and
    a new conversion (the busiest path) is one statement, so no BEGIN and COMMIT round trips."""
    params = postback_params_parse(raw)
    log = postback_log_entry(
        params=params, raw=raw, request_ip=request_ip, method=method, path=path, request=request
    )
    decision = postback_decide(lambda: record(params, log))
    if log.pk is None:
        _log_decided_write(log, decision)
    return decision


def postback_process(
    *,
    raw: Mapping[str, str],
    request_ip: str | None,
    method: str,
    path: str,
    now: datetime,
    request: InboundRequest | None = None,
    via: ConversionMethod = ConversionMethod.POSTBACK,
) -> PostbackDecision:
    """Handle one /postback call end to end (pixels too: `via`)."""
    return postback_handle(
        lambda params, log: conversion_record(
            params=params, request_ip=request_ip, now=now, request=request, via=via, log=log
        ),
        raw=raw,
        request_ip=request_ip,
        method=method,
        path=path,
        request=request,
    )


def postback_log_entry(
    *,
    params: Mapping[str, str],
    raw: Mapping[str, str],
    request_ip: str | None,
    method: str,
    path: str,
    request: InboundRequest | None = None,
) -> InboundPostbackLog:
    """The inbound log row of a call, before its decision: the request as the debugger shows
    it (parameters, relevant headers, raw body; secrets masked, sizes bounded)."""
    return model_new(
        InboundPostbackLog,
        method=method[:8],
        path=path[:64],
        ip=request_ip,
        params=params_for_log(raw),
        headers=headers_for_log(request.headers) if request else {},
        body=(
            body_for_log(request.body, content_type=request.headers.get("content-type", ""))
            if request
            else ""
        ),
        click_id=text_clean(params.get("click_id"), 64),
        order_id=text_clean(params.get("order_id"), 255),
    )


def postback_log_decide(entry: InboundPostbackLog, decision: PostbackDecision) -> None:
    """Put the decision (and the advertiser, when it is known) on a log row not yet written.
    The advertiser is the conversion's, or the one the recording step put there when it read
    the click, else the click's, read here (a click just found unknown is not read again)."""
    conversion = decision.conversion
    entry.result = decision.result
    entry.reason = decision.reason
    entry.http_status = decision.http_status
    entry.conversion = conversion
    if conversion is not None:
        entry.advertiser_id = conversion.offer.advertiser_id
    elif (
        entry.advertiser_id is None
        and decision.reason != "unknown_click"
        and token_like(entry.click_id)
    ):
        click = click_store.click_get(click_id=entry.click_id)
        entry.advertiser_id = click.offer.advertiser_id if click else None


def _log_decided_write(entry: InboundPostbackLog, decision: PostbackDecision) -> None:
    postback_log_decide(entry, decision)
    insert_unless_conflict(entry)


def postback_log_write(
    *,
    params: Mapping[str, str],
    raw: Mapping[str, str],
    request_ip: str | None,
    method: str,
    path: str,
    decision: PostbackDecision,
    request: InboundRequest | None = None,
) -> InboundPostbackLog:
    """One inbound log row: the call (postback_log_entry) and its decision."""
    entry = postback_log_entry(
        params=params, raw=raw, request_ip=request_ip, method=method, path=path, request=request
    )
    _log_decided_write(entry, decision)
    return entry
