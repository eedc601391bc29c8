"""Telling affiliates about their conversions: a durable outbox, delivered safely, logged.

1. `outbox_write` runs in the transaction that records a conversion or changes its status and adds
   one PostbackOutbox row per affiliate postback that wants to hear about that status (INSERT ...
   ON CONFLICT DO NOTHING: a replay adds nothing). The row commits with the change or not at all,
   so neither a broker outage nor a worker crash can lose the event.
2. A worker claims due rows (SELECT ... FOR UPDATE SKIP LOCKED) and leases them: attempts + 1 and
   next_attempt_at pushed past the longest the calls can take, committed before any call goes out.
   A worker killed mid-call leaves a row that simply comes due again when the lease runs out.
3. Each attempt is one OutboundPostbackDelivery row. A 2xx within the timeout delivers the row;
   anything else reschedules it on the published backoff until OUTBOUND_POSTBACK_MAX_ATTEMPTS.
   The result is written under the row's lock and only by the lease holder, so two workers never
   both record the row as delivered (delivery_one_success_per_row backs this up in the database).
4. Staff or the affiliate may ask for an event to be sent again. A row not delivered yet is
   requeued with a fresh set of attempts; a delivered one gets a new row (resend_number + 1),
   a new event with its own webhook-id that may succeed again. The automatic path only ever
   writes resend_number 0, so it still delivers each event at most once.

Only the conversion's current status is ever announced: a row whose status the conversion has
since left (pending, then approved before the pending call got through) is cancelled, not sent.

GET postbacks carry the macros in the URL; POST ones also send them as a JSON body. Signed
postbacks (Standard Webhooks) sign "{webhook-id}.{webhook-timestamp}.{payload}", where payload is
the JSON body for POST and, for GET, which has no body, the request target as sent ("/pb?cid=..."),
so the query string the data travels in is what is signed. webhook-id is "msg_<outbox id>", the
same on every retry, so a receiver can de-duplicate; a resend someone asked for is a new row, so a
new id, and is not dropped as a duplicate.

Settled rows (delivered, given up, cancelled) are pruned OUTBOUND_OUTBOX_RETENTION_DAYS after they
settled; their attempts stay in the delivery log for its own retention.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat, Left
from django.utils import timezone

from apps.common.db import Follower, fetchall_prepared, insert_unless_conflict
from apps.common.errors import DomainError
from apps.common.money import money_round
from apps.common.redis import redis_client
from apps.common.safe_http import UnsafeUrl, request_target, safe_request
from apps.common.text import text_clean
from apps.conversions.models import (
    Conversion,
    OutboundPostbackDelivery,
    OutboxState,
    PostbackOutbox,
)
from apps.offers.models import ConversionStatus
from apps.partners.models import AffiliatePostback
from apps.partners.services import webhook_headers
from apps.tracking.macros import macro_render

logger = logging.getLogger(__name__)

CLAIM_BATCH_SIZE = 10
# More rows than this at once are kicked as one "deliver what is due" run, not by id.
KICK_MAX_IDS = 50
# Added to the lease on top of the calls' own deadlines: time to write the result.
LEASE_MARGIN_SECONDS = 5
# One beat run delivers for at most this long; the next run (seconds later) carries on.
DELIVER_DUE_BUDGET_SECONDS = 50
BACKFILL_DEFAULT_DAYS = 7
BACKFILL_MAX_DAYS = 30
BACKFILL_MAX_ROWS = 10_000
# A resume requeues what was held back while the postback was paused, but not older than this:
# months of stale events would flood a tracker that was fixed today.
RESUME_MAX_DAYS = 30
# last_error prefix of rows held back by a pause; a resume requeues exactly those.
PAUSED_NOTE = "paused: "
RESPONSE_BODY_MAX = 1024


class OutboxError(DomainError):
    """A request about the outbox that cannot be honoured; `code` is stable."""


class FireRateLimited(OutboxError):
    """Too many test fires (or resends) for one affiliate this minute; `retry_after` is in
    seconds."""

    def __init__(self, *, retry_after: int, limit: int, what: str = "test fires") -> None:
        super().__init__(
            "rate_limited",
            message=f"at most {limit} {what} a minute; try again in {retry_after} s",
            http_status=429,
        )
        self.retry_after = retry_after


# --- who hears about what -------------------------------------------------------------------------


def _covering(*, affiliate: str, offer: str, goal: str, status: str) -> str:
    """The one definition of which postbacks (alias p) hear about a conversion, given SQL
    expressions for its affiliate, offer, goal and status: the affiliate's active postbacks whose
    scope (all offers, the offer, the offer's goal) covers it and that fire on its status:
    approved always, pending and rejected/reversed when asked for. Paused postbacks are
    included: their rows are written held back, for the resume. SQL, so that the outbox write
    needs no query of its own."""
    return f"""p.affiliate_id = {affiliate} AND p.is_active
  AND (p.offer_id IS NULL OR (p.offer_id = {offer} AND (p.goal_id IS NULL OR p.goal_id = {goal})))
  AND CASE {status}
        WHEN 'approved' THEN true
        WHEN 'pending' THEN p.fire_on_pending
        WHEN 'rejected' THEN p.fire_on_reversal
        WHEN 'reversed' THEN p.fire_on_reversal
        ELSE false END"""


_COVERING_SQL = "SELECT p.id FROM partners_affiliatepostback p WHERE " + _covering(  # noqa: S608
    affiliate="%s", offer="%s", goal="%s", status="%s::text"
)


def postbacks_for_conversion(conversion: Conversion) -> QuerySet[AffiliatePostback]:
    """The affiliate's postbacks that want to hear about this conversion (_covering)."""
    params = [conversion.affiliate_id, conversion.offer_id, conversion.goal_id, conversion.status]
    # Fixed SQL; the values travel as parameters.
    return AffiliatePostback.objects.filter(pk__in=RawSQL(_COVERING_SQL, params))  # noqa: S611


def _postback_covers(postback: AffiliatePostback, conversion: Conversion) -> bool:
    return postbacks_for_conversion(conversion).filter(pk=postback.pk).exists()


# --- macros -------------------------------------------------------------------------------------


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


def sample_macros(postback: AffiliatePostback, *, now: datetime) -> dict[str, object]:
    """Made-up values of every macro for a test fire; recognisably not a real conversion."""
    return {
        "click_id": "test0000000000000000000000",
        "offer_id": postback.offer_id or 0,
        "aff_id": postback.affiliate_id,
        "sub1": "test_sub1",
        "sub2": "test_sub2",
        "sub3": "test_sub3",
        "sub4": "test_sub4",
        "sub5": "test_sub5",
        "source_id": "test_source",
        "aff_click_id": "test_aff_click_id",
        "creative_id": "",
        "country": "US",
        "ip": "192.0.2.1",
        "timestamp": int(now.timestamp()),
        "goal": postback.goal.code if postback.goal is not None else "test",
        "payout": "1.00",
        "currency": "USD",
        "conversion_id": 0,
        "status": ConversionStatus.APPROVED.value,
        "order_id": "test-order",
        "sale_amount": "10.00",
    }


# --- writing the outbox -------------------------------------------------------------------------


def _rows_for_new_sql(*, one_postback: bool = False) -> str:
    """The automatic path (resend_number 0): one row per postback covering the conversion(s) in
    `new` (id, affiliate_id, offer_id, goal_id, status), or only for postback `%s` (after the
    _rows_params), held back (cancelled, PAUSED_NOTE) for a paused postback. An event the
    delivery log already shows delivered (before the outbox existed, or by a row since pruned)
    is left out; a replay adds nothing."""
    covering = _covering(
        affiliate="new.affiliate_id", offer="new.offer_id", goal="new.goal_id", status="new.status"
    )
    only = "AND p.id = %s" if one_postback else ""
    return f"""
INSERT INTO conversions_postbackoutbox
    (conversion_id, postback_id, conversion_status, resend_number, state, attempts,
     next_attempt_at, last_error, created_at, updated_at)
SELECT new.id, p.id, new.status, 0,
       CASE WHEN p.paused_at IS NULL THEN %s ELSE %s END, 0,
       CASE WHEN p.paused_at IS NULL THEN %s::timestamptz END,
       CASE WHEN p.paused_at IS NULL THEN '' ELSE %s END, %s, %s
FROM new, partners_affiliatepostback p
WHERE {covering} {only}
  AND NOT EXISTS (
    SELECT 1 FROM conversions_outboundpostbackdelivery d
    WHERE d.conversion_id = new.id AND d.postback_id = p.id AND d.conversion_status = new.status
      AND d.succeeded)
ON CONFLICT (conversion_id, postback_id, conversion_status, resend_number) DO NOTHING
RETURNING id, state
"""  # noqa: S608 - no part of it comes from a request


# A new conversion: its rows, written by its own INSERT (outbox_follower), and their ids to
# deliver. Built once, like the statements below: the postback path runs it on every call.
_NEW_ROWS_SQL = _rows_for_new_sql()
_NEW_ROWS_PENDING = (
    f"ARRAY(SELECT id FROM {{}} WHERE state = '{OutboxState.PENDING.value}' ORDER BY id)"  # noqa: S608
)
# A status change (or a resend's catch-up): the conversion's rows, from its row as stored.
_WRITE_SQL = f"""
WITH new AS (
    SELECT id, affiliate_id, offer_id, goal_id, status FROM conversions_conversion WHERE id = %s)
{_NEW_ROWS_SQL}"""  # noqa: S608 - no part of it comes from a request
# A backfill: the newest conversions one postback covers, and rows for that postback only.
_BACKFILL_SQL = f"""
WITH new AS (
    SELECT c.id, c.affiliate_id, c.offer_id, c.goal_id, c.status
    FROM partners_affiliatepostback p
    JOIN conversions_conversion c ON c.affiliate_id = p.affiliate_id AND c.created_at >= %s
    WHERE p.id = %s AND {
    _covering(affiliate="c.affiliate_id", offer="c.offer_id", goal="c.goal_id", status="c.status")
}
    ORDER BY c.created_at DESC LIMIT %s)
{_rows_for_new_sql(one_postback=True)}"""  # noqa: S608 - no part of it comes from a request


def _rows_params(now: datetime) -> tuple[object, ...]:
    pending, cancelled = OutboxState.PENDING.value, OutboxState.CANCELLED.value
    return (pending, cancelled, now, PAUSED_NOTE, now, now)


def _pending_ids(inserted: Iterable[tuple[int, str]]) -> list[int]:
    """The rows (id, state) written to be delivered, not held back for a paused postback."""
    return sorted(pk for pk, state in inserted if state == OutboxState.PENDING)


def outbox_follower(*, now: datetime) -> Follower:
    """The outbox rows of a conversion being inserted, written by its INSERT
    (apps.common.db.insert_with_followers); its result: the ids of the rows to deliver."""
    return Follower(_NEW_ROWS_SQL, _rows_params(now), result=_NEW_ROWS_PENDING)


def outbox_write(*, conversion: Conversion, now: datetime) -> list[int]:
    """Call inside the transaction that recorded the conversion or changed its status (the
    rows are for its status in the database). Returns the ids of the rows now waiting to be
    delivered (kick them after commit)."""
    return _pending_ids(fetchall_prepared(_WRITE_SQL, [conversion.pk, *_rows_params(now)]))


def outbox_kick(outbox_ids: Iterable[int]) -> None:
    """After commit, ask a worker to deliver these rows now. Best effort: the beat job delivers
    anything a broker outage kept from being sent here."""
    ids = list(outbox_ids)
    if ids:
        transaction.on_commit(lambda: _kicks.add(ids))


class _KickBatcher:
    """Rows committed by this process within OUTBOUND_KICK_WINDOW_SECONDS go to the workers in
    one message, sent by a timer thread when the window closes (at most one timer at a time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._timer: threading.Timer | None = None
        self._pid = os.getpid()

    def add(self, ids: list[int]) -> None:
        window = settings.OUTBOUND_KICK_WINDOW_SECONDS
        if window <= 0:
            _kick_now(ids)
            return
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's timer is not running here
                self._pid, self._ids, self._timer = os.getpid(), [], None
            self._ids.extend(ids)
            if self._timer is None:
                self._timer = threading.Timer(window, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            ids, self._ids, self._timer = self._ids, [], None
        if ids:
            _kick_now(ids)


_kicks = _KickBatcher()


def _kick_now(outbox_ids: list[int]) -> None:
    from apps.conversions import tasks  # noqa: PLC0415 - tasks imports us

    try:
        if len(outbox_ids) > KICK_MAX_IDS:
            # A backfill or a resume: no message full of ids, a run over everything due.
            tasks.deliver_due_postbacks.delay()
        else:
            tasks.deliver_outbox.delay(outbox_ids)
    except Exception:
        logger.exception("could not enqueue delivery of %s outbox rows", len(outbox_ids))


# --- claiming and delivering --------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """A leased row: only the holder of this exact (attempts, lease) may record the result."""

    outbox_id: int
    attempts: int
    lease_until: datetime


def _lease(rows: int) -> timedelta:
    # The batch is called one row after another, each bounded by the timeout; the lease must
    # outlast all of them or a live worker's row would be claimed again mid-batch.
    timeout = timedelta(seconds=settings.OUTBOUND_POSTBACK_TIMEOUT_SECONDS)
    return (rows + 1) * timeout + timedelta(seconds=LEASE_MARGIN_SECONDS)


def outbox_claim(
    *, now: datetime, limit: int = CLAIM_BATCH_SIZE, outbox_ids: Sequence[int] | None = None
) -> list[Claim]:
    """Lease up to `limit` due rows (only among outbox_ids when given). Commits before returning,
    so the lease holds even if the caller dies before writing anything else."""
    with transaction.atomic():
        due = PostbackOutbox.objects.select_for_update(skip_locked=True).filter(
            state=OutboxState.PENDING, next_attempt_at__lte=now
        )
        if outbox_ids is not None:
            due = due.filter(pk__in=list(outbox_ids))
        rows = list(due.order_by("next_attempt_at", "id").values_list("pk", "attempts")[:limit])
        if not rows:
            return []
        lease_until = now + _lease(len(rows))
        claims = [Claim(pk, attempts + 1, lease_until) for pk, attempts in rows]
        # One UPDATE for the batch: the rows are locked, so attempts + 1 is what claims hold.
        PostbackOutbox.objects.filter(pk__in=[claim.outbox_id for claim in claims]).update(
            attempts=F("attempts") + 1,
            next_attempt_at=lease_until,
            leased_until=lease_until,
            updated_at=now,
        )
    return claims


def _backoff(attempts_done: int) -> timedelta:
    """The published schedule (seconds before attempt n+1), plus up to 10% so that the retries of
    a receiver that was down do not all land in the same second when it comes back."""
    schedule = list(settings.OUTBOUND_POSTBACK_BACKOFF_SECONDS) or [60]
    base = timedelta(seconds=schedule[min(attempts_done - 1, len(schedule) - 1)])
    return base + base * secrets.SystemRandom().uniform(0, 0.1)


@dataclass(frozen=True)
class _Call:
    method: str
    url: str
    body: bytes | None
    headers: dict[str, str]


def _call_build(
    postback: AffiliatePostback, macros: dict[str, object], *, message_id: str, now: datetime
) -> _Call:
    url = macro_render(postback.url, macros)
    body: bytes | None = None
    headers: dict[str, str] = {}
    if postback.http_method == "POST":
        body = json.dumps(macros, separators=(",", ":"), ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    if postback.sign:
        payload = body.decode() if body is not None else request_target(url)
        headers |= webhook_headers(
            affiliate_id=postback.affiliate_id, message_id=message_id, payload=payload, now=now
        )
    return _Call(method=postback.http_method, url=url, body=body, headers=headers)


def _attempt(call: _Call) -> OutboundPostbackDelivery:
    """Make the call; an unsaved log row holding what happened."""
    delivery = OutboundPostbackDelivery(url=call.url[:4000], http_method=call.method)
    try:
        response = safe_request(
            call.method,
            call.url,
            timeout=settings.OUTBOUND_POSTBACK_TIMEOUT_SECONDS,
            body=call.body,
            headers=call.headers,
            max_body=RESPONSE_BODY_MAX,
        )
    except UnsafeUrl as refused:
        delivery.error = f"refused: {refused.code}"
    except (OSError, http.client.HTTPException, ValueError) as failure:
        # ValueError: http.client refuses a request line it cannot encode. The text may quote
        # what the receiver sent (a status line of "\x00"): stored cleaned, as untrusted text.
        delivery.error = text_clean(f"{type(failure).__name__}: {failure}", 255)
    else:
        delivery.http_status = response.status
        delivery.latency_ms = response.latency_ms
        delivery.response_body = response.body[:RESPONSE_BODY_MAX].replace("\x00", "")
        delivery.succeeded = 200 <= response.status < 300
    return delivery


def _not_deliverable(row: PostbackOutbox) -> str:
    """Why this row must not be sent any more ("" when it may)."""
    postback, conversion = row.postback, row.conversion
    if not postback.is_active:
        return "postback switched off"
    if postback.paused_at is not None:
        return PAUSED_NOTE + "postback paused"
    if conversion.status != row.conversion_status:
        return f"superseded: the conversion is now {conversion.status}"
    if not _postback_covers(postback, conversion):
        return "postback no longer covers this conversion"
    return ""


def outbox_deliver_claimed(claim: Claim) -> OutboundPostbackDelivery | None:
    """Make the claimed attempt; returns its saved log row, or None when nothing was sent."""
    row = (
        PostbackOutbox.objects.select_related("conversion__goal", "postback")
        .filter(pk=claim.outbox_id)
        .first()
    )
    if row is None:
        return None
    if not _holds(row, claim):
        return None  # the lease ran out and another worker took the row over, or staff did
    reason = _not_deliverable(row)
    if reason:
        PostbackOutbox.objects.filter(
            pk=row.pk, state=OutboxState.PENDING, attempts=claim.attempts
        ).update(
            state=OutboxState.CANCELLED,
            attempts=claim.attempts - 1,  # nothing was attempted
            next_attempt_at=None,
            leased_until=None,
            last_error=reason[:255],
            updated_at=timezone.now(),
        )
        logger.info("outbox %s not sent: %s", row.pk, reason)
        return None
    call = _call_build(
        row.postback,
        postback_macros(row.conversion),
        message_id=f"msg_{row.pk}",
        now=timezone.now(),
    )
    delivery = _attempt(call)
    delivery.conversion = row.conversion
    delivery.outbox = row
    delivery.postback = row.postback
    delivery.conversion_status = row.conversion_status
    delivery.attempt = claim.attempts
    return _result_record(claim, delivery)


def _result_record(
    claim: Claim, delivery: OutboundPostbackDelivery
) -> OutboundPostbackDelivery | None:
    now = timezone.now()
    with transaction.atomic():
        row = PostbackOutbox.objects.select_for_update().filter(pk=claim.outbox_id).first()
        if row is None:
            return None  # the conversion was deleted meanwhile
        try:
            with transaction.atomic():
                delivery.save()
        except IntegrityError:
            # delivery_one_success_per_row: the row was delivered already (by a holder that took
            # over after this one's lease ran out). The row is done, whoever marked it.
            if row.state != OutboxState.DELIVERED:
                _delivered_mark(row, now=now)
            return None
        if delivery.succeeded:
            # Delivered is the truth whoever holds the lease now; a holder still calling will find
            # the row no longer pending and only log its attempt.
            _delivered_mark(row, now=now)
            return delivery
        _failure_schedule(row, claim, error=delivery.error or f"HTTP {delivery.http_status}")
    return delivery


def _delivered_mark(row: PostbackOutbox, *, now: datetime) -> None:
    """The locked row is done: delivered, nothing more due, its lease closed."""
    row.state = OutboxState.DELIVERED
    row.delivered_at = now
    row.next_attempt_at = row.leased_until = None
    row.last_error = ""
    row.save(
        update_fields=[
            "state",
            "delivered_at",
            "next_attempt_at",
            "leased_until",
            "last_error",
            "updated_at",
        ]
    )


def _holds(row: PostbackOutbox, claim: Claim) -> bool:
    """Whether the claim still holds the row: the same attempt under the same lease (a row staff
    requeued and another worker claimed again can be at the same attempt number)."""
    return (
        row.state == OutboxState.PENDING
        and row.attempts == claim.attempts
        and row.next_attempt_at == claim.lease_until
    )


def _failure_schedule(row: PostbackOutbox, claim: Claim, *, error: str) -> None:
    """A failed attempt on a locked row: the next one on the backoff schedule, or given up
    after the last. Nothing when the claim no longer holds the row."""
    if not _holds(row, claim):
        return
    row.last_error = error[:255]
    row.leased_until = None  # the call is over
    if claim.attempts >= settings.OUTBOUND_POSTBACK_MAX_ATTEMPTS:
        row.state = OutboxState.FAILED
        row.next_attempt_at = None
    else:
        row.next_attempt_at = timezone.now() + _backoff(claim.attempts)
    row.save(update_fields=["state", "last_error", "next_attempt_at", "leased_until", "updated_at"])


def _attempt_crashed(claim: Claim) -> None:
    """An attempt that broke in our own code counts as a failed one, so the row keeps to the
    schedule and is given up on after the last attempt, instead of being claimed again after
    every lease for ever."""
    with transaction.atomic():
        row = PostbackOutbox.objects.select_for_update().filter(pk=claim.outbox_id).first()
        if row is not None:
            _failure_schedule(row, claim, error="internal error (logged)")


def outbox_deliver_due(
    *, outbox_ids: Sequence[int] | None = None, budget_seconds: float = DELIVER_DUE_BUDGET_SECONDS
) -> int:
    """Claim and deliver due rows in small batches until none are due or the budget is spent
    (only among outbox_ids when given). Returns how many attempts were made.

    A row delivered or failed is no longer due, so the loop ends; a failure's retry waits for
    a later run (the schedule starts at seconds)."""
    attempts = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        claims = outbox_claim(now=timezone.now(), outbox_ids=outbox_ids)
        for claim in claims:
            try:
                attempts += outbox_deliver_claimed(claim) is not None
            except Exception:
                # One row's fault must not hold back the rest of the batch until its lease ends.
                logger.exception("outbox %s: delivery attempt failed in our code", claim.outbox_id)
                _attempt_crashed(claim)
                attempts += 1
        if not claims:
            break
    return attempts


# --- pausing a postback that keeps failing --------------------------------------------------------


def postback_failing_since(
    *, postback_id: int, not_before: datetime | None = None
) -> datetime | None:
    """When the current run of failures began: the first failed attempt since the last success
    (test fires aside), and not before `not_before` (the postback's last resume); None when the
    last attempt succeeded or there was none."""
    log = OutboundPostbackDelivery.objects.filter(postback_id=postback_id, is_test=False)
    if not_before is not None:
        log = log.filter(created_at__gte=not_before)
    last_success = log.filter(succeeded=True).order_by("-id").values_list("id", flat=True).first()
    failures = log.filter(succeeded=False)
    if last_success is not None:
        failures = failures.filter(id__gt=last_success)
    return failures.order_by("id").values_list("created_at", flat=True).first()


def postbacks_pause_failing(*, now: datetime) -> list[int]:
    """Pause every postback whose deliveries all failed for OUTBOUND_POSTBACK_PAUSE_AFTER_HOURS,
    counted from its last resume at the earliest: a URL resumed after a fix that still fails gets
    a whole window again, not an instant re-pause over the failures that paused it before.

    Only postbacks still being tried are looked at (a pending row with an attempt behind it, or a
    row given up on lately), so this stays cheap however many postbacks there are."""
    window = timedelta(hours=settings.OUTBOUND_POSTBACK_PAUSE_AFTER_HOURS)
    candidates = dict(
        PostbackOutbox.objects.filter(
            Q(state=OutboxState.PENDING, attempts__gte=1)
            | Q(state=OutboxState.FAILED, updated_at__gte=now - timedelta(hours=1)),
            postback__paused_at__isnull=True,
        )
        .values_list("postback_id", "postback__resumed_at")
        .order_by()  # the model's ordering (-id) would make DISTINCT per row
        .distinct()
    )
    paused = []
    for postback_id, resumed_at in sorted(candidates.items()):
        since = postback_failing_since(postback_id=postback_id, not_before=resumed_at)
        if since is None or since > now - window:
            continue
        reason = f"No successful delivery since {since:%Y-%m-%d %H:%M} UTC; resume after fixing it."
        if postback_pause(postback_id=postback_id, reason=reason, now=now):
            paused.append(postback_id)
    return paused


@transaction.atomic
def postback_pause(*, postback_id: int, reason: str, now: datetime) -> bool:
    """Stop calling the URL: the postback is marked paused (the affiliate sees why) and its
    waiting rows are held back for the resume. False when it was paused already."""
    changed = AffiliatePostback.objects.filter(pk=postback_id, paused_at__isnull=True).update(
        paused_at=now, pause_reason=reason[:255]
    )
    if not changed:
        return False
    PostbackOutbox.objects.filter(postback_id=postback_id, state=OutboxState.PENDING).update(
        state=OutboxState.CANCELLED,
        next_attempt_at=None,
        last_error=Left(Concat(Value(PAUSED_NOTE), "last_error"), 255),
        updated_at=now,
    )
    logger.warning("postback %s paused: %s", postback_id, reason)
    return True


@transaction.atomic
def postback_resume(*, postback_id: int, now: datetime) -> int:
    """Call the URL again: clears the pause and requeues, with a fresh set of attempts, what the
    pause held back and what was given up on in the run of failures that led to it (a row runs
    out of attempts in about a day, the pause comes days later), the last RESUME_MAX_DAYS of
    both. Returns how many rows were requeued.

    resumed_at marks where the pause rule starts counting failures again."""
    postback = AffiliatePostback.objects.select_for_update().filter(pk=postback_id).first()
    if postback is None:
        return 0
    since = now - timedelta(days=RESUME_MAX_DAYS)
    requeue = Q(state=OutboxState.CANCELLED, last_error__startswith=PAUSED_NOTE)
    if postback.paused_at is not None:
        failing_since = postback_failing_since(
            postback_id=postback_id, not_before=postback.resumed_at
        )
        if failing_since is not None:
            requeue |= Q(state=OutboxState.FAILED, updated_at__gte=failing_since)
        AffiliatePostback.objects.filter(pk=postback_id).update(
            paused_at=None, pause_reason="", resumed_at=now
        )
    held = PostbackOutbox.objects.filter(requeue, postback_id=postback_id, created_at__gte=since)
    ids = list(held.values_list("pk", flat=True))
    _requeue(ids, now=now)
    return len(ids)


# --- staff and affiliates asking for (re)delivery -----------------------------------------------


def _requeue(outbox_ids: list[int], *, now: datetime) -> None:
    """Due now with a fresh set of attempts. A row whose call may still be out (a claim's lease
    that no result has closed: the worker is calling, or staff cancelled or a pause held the
    row meanwhile) is due when that lease ends instead: due now, a second worker would call
    beside the first. The first call's result no longer holds the row (attempts start again):
    a success still marks it delivered, a failure writes nothing and the row goes out again."""
    PostbackOutbox.objects.filter(pk__in=outbox_ids).update(
        state=OutboxState.PENDING,
        attempts=0,
        next_attempt_at=Case(
            When(leased_until__gt=now, then=F("leased_until")), default=Value(now)
        ),
        last_error="",
        updated_at=now,
    )
    outbox_kick(outbox_ids)


@dataclass(frozen=True)
class Resend:
    """What a resend did. `queued`: calls going out now (rows requeued with fresh attempts, and
    new rows for events that had been delivered); `already_delivered`: how many of those were
    delivered before and are sent again as new events; `skipped`: events no longer true to send
    (the postback is switched off or paused, or the conversion's status has moved on)."""

    queued: int
    already_delivered: int
    skipped: int


_Event = tuple[int, int, str]  # conversion id, postback id, the status it reports


def _event_current(row: PostbackOutbox) -> bool:
    postback = row.postback
    return (
        postback.is_active
        and postback.paused_at is None
        and row.conversion.status == row.conversion_status
    )


def _latest_rows(events: set[_Event]) -> dict[_Event, PostbackOutbox]:
    """Each event's newest row (the highest resend_number)."""
    rows = (
        PostbackOutbox.objects.select_related("conversion", "postback")
        .filter(
            conversion_id__in={conversion_id for conversion_id, _, _ in events},
            postback_id__in={postback_id for _, postback_id, _ in events},
        )
        .order_by("resend_number")
    )
    latest: dict[_Event, PostbackOutbox] = {}
    for row in rows:
        key = (row.conversion_id, row.postback_id, row.conversion_status)
        if key in events:
            latest[key] = row
    return latest


@transaction.atomic
def outbox_resend(
    *, outbox_ids: Iterable[int], now: datetime, user_id: int | None = None
) -> Resend:
    """Send the events of these rows again, now (staff or the affiliate asked).

    Per event, its newest row decides: one not delivered yet is requeued with a fresh set of
    attempts; a delivered one gets a new row (resend_number + 1, requested_by user_id) that may
    succeed again, its own event with its own webhook-id. Asking again before that resend went
    out requeues it rather than adding another call. The automatic path never comes here: it
    writes resend_number 0 only, so a retried event is still delivered at most once."""
    # Locking the selected rows serialises two requests for the same rows (a double click):
    # the second one then sees the first one's resend as the event's newest row.
    events: set[_Event] = set(
        PostbackOutbox.objects.select_for_update()
        .filter(pk__in=list(outbox_ids))
        .order_by("pk")
        .values_list("conversion_id", "postback_id", "conversion_status")
    )
    requeue: list[int] = []
    resends: list[PostbackOutbox] = []
    skipped = 0
    for key, row in sorted(_latest_rows(events).items()):
        if not _event_current(row):
            skipped += 1
        elif row.state != OutboxState.DELIVERED:
            requeue.append(row.pk)
        else:
            conversion_id, postback_id, status = key
            resends.append(
                PostbackOutbox(
                    conversion_id=conversion_id,
                    postback_id=postback_id,
                    conversion_status=status,
                    resend_number=row.resend_number + 1,
                    requested_by_id=user_id,
                    state=OutboxState.PENDING,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    _requeue(requeue, now=now)
    # A conflict (outbox_one_per_event): a request running alongside made this very resend.
    created = [resend.pk for resend in resends if insert_unless_conflict(resend)]
    outbox_kick(created)
    return Resend(
        queued=len(requeue) + len(created), already_delivered=len(created), skipped=skipped
    )


@transaction.atomic
def outbox_cancel(*, outbox_ids: Iterable[int], now: datetime) -> int:
    """Staff: stop trying these rows."""
    return PostbackOutbox.objects.filter(pk__in=list(outbox_ids), state=OutboxState.PENDING).update(
        state=OutboxState.CANCELLED, next_attempt_at=None, last_error="cancelled", updated_at=now
    )


@transaction.atomic
def conversion_postbacks_resend(
    *, conversion_id: int, affiliate_id: int, now: datetime, user_id: int | None = None
) -> Resend:
    """The affiliate asks for its postbacks about one of its conversions again: rows are written
    for postbacks that cover it (one added since, say), and every event sent again (see
    outbox_resend), delivered ones included. At most OUTBOUND_RESEND_PER_MINUTE per affiliate
    (FireRateLimited beyond): each resend is real calls to URLs the affiliate chose."""
    _minute_budget_count(
        action="resend",
        what="resends",
        limit=settings.OUTBOUND_RESEND_PER_MINUTE,
        affiliate_id=affiliate_id,
        now=now,
    )
    conversion = (
        Conversion.objects.select_for_update()
        .filter(pk=conversion_id, affiliate_id=affiliate_id)
        .first()
    )
    if conversion is None:
        raise OutboxError("conversion_not_found", http_status=404)
    outbox_write(conversion=conversion, now=now)
    # Rows of switched-off or paused postbacks too: outbox_resend counts them as skipped.
    current = PostbackOutbox.objects.filter(
        conversion=conversion, conversion_status=conversion.status
    )
    return outbox_resend(outbox_ids=current.values_list("pk", flat=True), now=now, user_id=user_id)


@transaction.atomic
def postback_backfill(*, postback_id: int, now: datetime, days: int = BACKFILL_DEFAULT_DAYS) -> int:
    """Write rows for the conversions of the last `days` days this postback covers (a postback
    just added, say), at most BACKFILL_MAX_ROWS, newest first. Returns how many were queued."""
    if not 1 <= days <= BACKFILL_MAX_DAYS:
        raise OutboxError("invalid_days", message=f"days must be 1 to {BACKFILL_MAX_DAYS}")
    postback = AffiliatePostback.objects.select_for_update().filter(pk=postback_id).first()
    if postback is None or not postback.is_active:
        raise OutboxError("postback_not_active", http_status=409)
    if postback.paused_at is not None:
        raise OutboxError("postback_paused", http_status=409, message="resume it first")
    rows = fetchall_prepared(
        _BACKFILL_SQL,
        [
            now - timedelta(days=days),
            postback.pk,
            BACKFILL_MAX_ROWS,
            *_rows_params(now),
            postback.pk,
        ],
    )
    ids = _pending_ids(rows)
    outbox_kick(ids)
    return len(ids)


# --- test fire ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FireResult:
    """What the affiliate is told: "delivered", "failed" or "refused" (an SSRF refusal, with no
    word about the target), and the HTTP status and latency when there was an answer."""

    result: str
    http_status: int | None
    latency_ms: int | None


TEST_FIRE_WINDOW_SECONDS = 60


def _minute_budget_count(
    *, action: str, what: str, limit: int, affiliate_id: int, now: datetime
) -> None:
    """Count one `action` (test_fire, resend) against the affiliate's budget for this minute (a
    Redis counter per affiliate and minute); raises FireRateLimited when the budget is spent.

    Every request counts, whatever its target, so a 429 says nothing about any URL. Without Redis
    the call is allowed (and logged): each one is bounded anyway (timeouts, size caps, public
    addresses only), and a Redis outage must not take the debugging tools away."""
    stamp = int(now.timestamp())
    window = stamp // TEST_FIRE_WINDOW_SECONDS
    key = f"outbound:{action}:{affiliate_id}:{window}"
    try:
        pipe = redis_client().pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 2 * TEST_FIRE_WINDOW_SECONDS)
        count, _ = pipe.execute()
    except redis.RedisError:
        logger.warning("%s limit unchecked for affiliate %s: Redis unavailable", what, affiliate_id)
        return
    if int(count) > limit:
        raise FireRateLimited(
            retry_after=TEST_FIRE_WINDOW_SECONDS - stamp % TEST_FIRE_WINDOW_SECONDS,
            limit=limit,
            what=what,
        )


def postback_test_fire(*, postback_id: int, now: datetime) -> FireResult:
    """Call the postback's URL once with sample values; logged as a test delivery. At most
    OUTBOUND_TEST_FIRE_PER_MINUTE per affiliate (FireRateLimited beyond)."""
    postback = AffiliatePostback.objects.select_related("goal").filter(pk=postback_id).first()
    if postback is None:
        raise OutboxError("postback_not_found", http_status=404)
    _minute_budget_count(
        action="test_fire",
        what="test fires",
        limit=settings.OUTBOUND_TEST_FIRE_PER_MINUTE,
        affiliate_id=postback.affiliate_id,
        now=now,
    )
    call = _call_build(
        postback,
        sample_macros(postback, now=now),
        message_id=f"msg_test_{uuid.uuid4().hex}",
        now=now,
    )
    delivery = _attempt(call)
    delivery.postback = postback
    delivery.is_test = True
    delivery.conversion_status = ConversionStatus.APPROVED
    delivery.attempt = 1
    delivery.save()
    if delivery.error.startswith("refused: "):
        return FireResult(result="refused", http_status=None, latency_ms=None)
    return FireResult(
        result="delivered" if delivery.succeeded else "failed",
        http_status=delivery.http_status,
        latency_ms=delivery.latency_ms,
    )


# --- retention ----------------------------------------------------------------------------------

_PRUNE_INBOUND_SQL = """
DELETE FROM conversions_inboundpostbacklog WHERE id IN (
    SELECT id FROM conversions_inboundpostbacklog WHERE created_at < %s ORDER BY id LIMIT %s
)
"""
_PRUNE_DELIVERIES_SQL = """
DELETE FROM conversions_outboundpostbackdelivery WHERE id IN (
    SELECT id FROM conversions_outboundpostbackdelivery WHERE created_at < %s ORDER BY id LIMIT %s
)
"""
# Settled rows only (SETTLED_OUTBOX_STATES, spelt as the outbox_settled index's condition so the
# planner uses it; never a pending row: that is an event still to deliver), oldest first. Rows a
# resend or a late worker holds are skipped, not waited for. Their attempts stay in the delivery
# log, unlinked (the foreign key is checked at commit).
_PRUNE_OUTBOX_SQL = """
WITH doomed AS (
    SELECT id FROM conversions_postbackoutbox
    WHERE state IN ('cancelled', 'delivered', 'failed') AND updated_at < %s
    ORDER BY updated_at LIMIT %s
    FOR UPDATE SKIP LOCKED
), unlinked AS (
    UPDATE conversions_outboundpostbackdelivery SET outbox_id = NULL
    WHERE outbox_id IN (SELECT id FROM doomed)
)
DELETE FROM conversions_postbackoutbox WHERE id IN (SELECT id FROM doomed)
"""


def logs_prune(*, now: datetime, batch_size: int = 5000, max_batches: int = 20) -> tuple[int, bool]:
    """Delete inbound postback log rows older than INBOUND_LOG_RETENTION_DAYS, delivery attempts
    older than OUTBOUND_DELIVERY_RETENTION_DAYS and outbox rows settled (delivered, given up,
    cancelled) more than OUTBOUND_OUTBOX_RETENTION_DAYS ago, one short transaction per batch.
    Returns (rows deleted, whether more are left for another run). Running it again, or after
    a crash halfway, deletes only what is still due."""
    plans = [
        (_PRUNE_INBOUND_SQL, now - timedelta(days=settings.INBOUND_LOG_RETENTION_DAYS)),
        (_PRUNE_DELIVERIES_SQL, now - timedelta(days=settings.OUTBOUND_DELIVERY_RETENTION_DAYS)),
        (_PRUNE_OUTBOX_SQL, now - timedelta(days=settings.OUTBOUND_OUTBOX_RETENTION_DAYS)),
    ]
    deleted = 0
    more = False
    for sql, cutoff in plans:
        for _ in range(max_batches):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, [cutoff, batch_size])
                count = cursor.rowcount
            deleted += count
            if count < batch_size:
                break
        else:
            more = True
    return deleted, more
