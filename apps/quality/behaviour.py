"""Behavioural signals, per affiliate and sub id, and the job that re-scores recent conversions.

They need many conversions to say anything, so they run in a Celery job, not with the postback.
A re-score moves only pending conversions (to rejected, when the band says so and the offer allows
it); an approved, paid or reversed conversion is never flipped: the job records a QualityNote.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count

from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus, Goal, Offer
from apps.quality.models import QualityAction, QualityNote
from apps.quality.selectors import (
    GoalTimings,
    ResolvedProfile,
    goal_timings,
    quality_profile_for_offer,
)
from apps.quality.signals import BEHAVIOURAL_REASONS, Reason, Signal
from apps.tracking.models import Click

MIN_CONVERSIONS = 5  # fewer conversions in a sub id say nothing about its behaviour
BUNCHED_FACTOR = 3  # "a few seconds": within 3x the goal's minimum time
BUNCHED_SHARE = 0.6
FLAT_LONG_FRACTION = 1 / 24  # "many hours": beyond 1/24 of the goal's plausible maximum
FLAT_SHARE = 0.5
CR_MIN_CLICKS = 10
CR_FACTOR = 3
CR_MARGIN = 0.15
SPIKE_WINDOW = timedelta(hours=1)
SPIKE_MIN = 10
SPIKE_FACTOR = 5


@dataclass(frozen=True)
class Timing:
    seconds: float
    min_seconds: float
    max_seconds: float | None


def signal_times_bunched(*, timings: list[Timing]) -> Signal | None:
    """Click injection: most conversions land a few seconds after their click."""
    if len(timings) < MIN_CONVERSIONS:
        return None
    within = [t for t in timings if t.seconds < BUNCHED_FACTOR * t.min_seconds]
    share = len(within) / len(timings)
    if share >= BUNCHED_SHARE:
        return Signal(
            Reason.TIMES_BUNCHED,
            {
                "conversions": len(timings),
                "share_within": round(share, 3),
                "median_seconds": round(statistics.median(t.seconds for t in timings), 3),
            },
        )
    return None


def signal_times_flat(*, timings: list[Timing]) -> Signal | None:
    """Click spamming: conversions spread over many hours after their (spammed) clicks."""
    known = [t for t in timings if t.max_seconds]
    if len(known) < MIN_CONVERSIONS:
        return None
    long = [t for t in known if t.seconds > FLAT_LONG_FRACTION * (t.max_seconds or 0)]
    share = len(long) / len(known)
    if share >= FLAT_SHARE:
        return Signal(
            Reason.TIMES_FLAT,
            {
                "conversions": len(known),
                "share_long": round(share, 3),
                "median_seconds": round(statistics.median(t.seconds for t in known), 3),
            },
        )
    return None


def signal_cr_above_norm(
    *, sub_clicks: int, sub_conversions: int, offer_clicks: int, offer_conversions: int
) -> Signal | None:
    """The sub id converts far better than the rest of the offer's traffic (incentivised)."""
    rest_clicks = offer_clicks - sub_clicks
    if sub_clicks < CR_MIN_CLICKS or sub_conversions < MIN_CONVERSIONS or rest_clicks <= 0:
        return None
    sub_cr = sub_conversions / sub_clicks
    norm = max(0, offer_conversions - sub_conversions) / rest_clicks
    if sub_cr >= max(CR_FACTOR * norm, norm + CR_MARGIN):
        return Signal(
            Reason.CR_ABOVE_NORM,
            {"sub_cr": round(sub_cr, 4), "offer_cr": round(norm, 4), "clicks": sub_clicks},
        )
    return None


def signal_volume_spike(*, last_hour: int, earlier: int, earlier_hours: float) -> Signal | None:
    """Many more conversions in the last hour than the sub id's hourly average before it."""
    average = earlier / earlier_hours if earlier_hours > 0 else 0.0
    if last_hour >= SPIKE_MIN and last_hour > SPIKE_FACTOR * max(1.0, average):
        return Signal(
            Reason.VOLUME_SPIKE, {"last_hour": last_hour, "hourly_average": round(average, 2)}
        )
    return None


def signal_ip_cluster(*, ip: str | None, others: int, has_repeat: bool) -> Signal | None:
    """The first of several conversions from one IP (the later ones carry repeat_ip_on_offer)."""
    if ip and others and not has_repeat:
        return Signal(Reason.IP_CLUSTER, {"ip": ip, "other_conversions": others})
    return None


@dataclass
class RescoreOutcome:
    rescored: int = 0
    moved: int = 0
    noted: int = 0


def _behaviour_for_offer(
    *, offer: Offer, conversions: list[Conversion], now: datetime, window: timedelta
) -> dict[int, list[Signal]]:
    timings_by_goal: dict[int, GoalTimings] = {}
    goals = {goal.pk: goal for goal in Goal.objects.filter(offer=offer)}
    for goal_id, goal in goals.items():
        timings_by_goal[goal_id] = goal_timings(goal=goal, offer=offer)

    groups: dict[tuple[int, str], list[Conversion]] = defaultdict(list)
    by_ip: dict[str, set[str]] = defaultdict(set)
    for conversion in conversions:
        groups[(conversion.affiliate_id, conversion.sub1)].append(conversion)
        for ip in {conversion.ip, conversion.click_ip} - {None, ""}:
            by_ip[str(ip)].add(conversion.click_id)

    clicks = Click.objects.filter(offer_id=offer.pk, created_at__gte=now - window)
    click_counts = {
        (row["affiliate_id"], row["sub1"]): row["n"]
        for row in clicks.values("affiliate_id", "sub1").annotate(n=Count("id"))
    }
    offer_clicks = sum(click_counts.values())
    # Conversions of the window's earlier part, for the spike baseline (the window is recent).
    earlier_hours = (window - SPIKE_WINDOW).total_seconds() / 3600

    found: dict[int, list[Signal]] = {}
    for key, members in groups.items():
        timings = [
            Timing(
                seconds=(c.created_at - c.click_created_at).total_seconds(),
                min_seconds=timings_by_goal[c.goal_id].min_seconds,
                max_seconds=timings_by_goal[c.goal_id].max_seconds,
            )
            for c in members
            if c.click_created_at is not None  # coupon conversions have no click time
        ]
        last_hour = sum(1 for c in members if c.created_at >= now - SPIKE_WINDOW)
        group_signals = [
            signal_cr_above_norm(
                sub_clicks=click_counts.get(key, 0),
                sub_conversions=len(members),
                offer_clicks=offer_clicks,
                offer_conversions=len(conversions),
            ),
            signal_times_bunched(timings=timings),
            signal_times_flat(timings=timings),
            signal_volume_spike(
                last_hour=last_hour,
                earlier=len(members) - last_hour,
                earlier_hours=earlier_hours,
            ),
        ]
        for conversion in members:
            own = [s for s in group_signals if s is not None]
            ips = {conversion.ip, conversion.click_ip} - {None, ""}
            others = {cid for ip in ips for cid in by_ip[str(ip)]} - {conversion.click_id}
            cluster = signal_ip_cluster(
                ip=str(conversion.ip or conversion.click_ip or ""),
                others=len(others),
                has_repeat=Reason.REPEAT_IP in conversion.quality_reasons,
            )
            if cluster is not None:
                own.append(cluster)
            found[conversion.pk] = own
    return found


def quality_rescore_offer(*, offer_id: int, now: datetime, window_hours: int) -> RescoreOutcome:
    """Re-score the offer's conversions of the last `window_hours` with the behavioural signals.
    Safe to run twice: an unchanged score changes nothing and leaves no second note."""
    outcome = RescoreOutcome()
    offer = Offer.objects.filter(pk=offer_id).first()
    if offer is None:
        return outcome
    window = timedelta(hours=window_hours)
    profile = quality_profile_for_offer(offer=offer)
    conversions = list(
        Conversion.objects.filter(offer=offer, created_at__gte=now - window, created_at__lte=now)
    )
    found = _behaviour_for_offer(offer=offer, conversions=conversions, now=now, window=window)
    with transaction.atomic():
        locked = Conversion.objects.select_for_update().filter(pk__in=list(found))
        for conversion in locked:
            outcome.rescored += _rescore_one(
                conversion=conversion,
                behaviour=found[conversion.pk],
                profile=profile,
                now=now,
                outcome=outcome,
            )
    return outcome


def _rescore_one(
    *,
    conversion: Conversion,
    behaviour: list[Signal],
    profile: ResolvedProfile,
    now: datetime,
    outcome: RescoreOutcome,
) -> int:
    reasons = [r for r in conversion.quality_reasons if r not in BEHAVIOURAL_REASONS]
    evidence = {
        code: value
        for code, value in (conversion.quality_evidence or {}).items()
        if code not in BEHAVIOURAL_REASONS
    }
    for signal in behaviour:
        if signal.code not in reasons:
            reasons.append(signal.code)
            evidence[signal.code] = signal.evidence
    score = max(0, 100 - sum(profile.weight(code) for code in reasons))
    if reasons == conversion.quality_reasons and score == conversion.quality_score:
        return 0
    old_score = conversion.quality_score
    action = profile.action_for(score)
    fields = ["quality_score", "quality_reasons", "quality_evidence", "quality_rule_version"]
    conversion.quality_score = score
    conversion.quality_reasons = reasons
    conversion.quality_evidence = evidence
    conversion.quality_rule_version = profile.rule_version
    conversion.save(update_fields=[*fields, "updated_at"])
    if conversion.status == ConversionStatus.PENDING and action == QualityAction.REJECT:
        _move(conversion, ConversionStatus.REJECTED, now, "re-score rejected a pending conversion")
        outcome.moved += 1
        _note(conversion, old_score, action, now, "re-score rejected a pending conversion")
    elif (
        conversion.status == ConversionStatus.APPROVED
        and action == QualityAction.REJECT
        and settings.QUALITY_RESCORE_REVERSES_APPROVED
    ):
        # Configured: take the money back through the ledger (a reversal entry, never an edit).
        _move(
            conversion, ConversionStatus.REVERSED, now, "re-score reversed an approved conversion"
        )
        outcome.moved += 1
        _note(conversion, old_score, action, now, "re-score reversed an approved conversion")
    elif conversion.status in (ConversionStatus.APPROVED, ConversionStatus.REVERSED) and (
        action != QualityAction.APPROVE
    ):
        outcome.noted += 1
        _note(conversion, old_score, action, now, f"re-score would {action}; status kept")
    return 1


def _move(conversion: Conversion, status: ConversionStatus, now: datetime, reason: str) -> None:
    # Imported late: conversions.services scores through apps.quality.
    from apps.conversions.models import StatusChangeSource  # noqa: PLC0415
    from apps.conversions.status import status_apply_locked  # noqa: PLC0415

    status_apply_locked(
        conversion,
        new_status=status,
        source=StatusChangeSource.QUALITY_RESCORE,
        user_id=None,
        reason=reason,
        now=now,
    )


def _note(
    conversion: Conversion, old_score: int, action: QualityAction, now: datetime, text: str
) -> None:
    QualityNote.objects.create(
        conversion=conversion,
        created_at=now,
        old_score=old_score,
        new_score=conversion.quality_score,
        reasons=conversion.quality_reasons,
        evidence=conversion.quality_evidence,
        status=conversion.status,
        action=action,
        text=text,
    )


def quality_offers_to_rescore(*, now: datetime, window_hours: int) -> list[int]:
    since = now - timedelta(hours=window_hours)
    return sorted(
        set(
            Conversion.objects.filter(created_at__gte=since, created_at__lte=now).values_list(
                "offer_id", flat=True
            )
        )
    )
