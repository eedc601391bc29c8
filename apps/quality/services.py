"""Lead quality: a score from 0 (surely bad) to 100 (nothing suspicious), with reasons and the
evidence behind each, and the action the score's band calls for.

Each signal that fires (apps.quality.signals) subtracts its weight; the weights and bands come from
the offer's quality profile (apps.quality.selectors). The reason codes and the meaning of
quality_score / quality_reasons are stable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import F

from apps.common.db import Follower, follower_insert, model_new
from apps.conversions.models import Conversion, StatusChangeSource
from apps.offers.models import ConversionStatus, Goal, Offer
from apps.quality import signals as sig
from apps.quality.leads import device_key, email_key, lead_hash, phone_check
from apps.quality.models import LeadFingerprint, QualityAction, QualityNote, QualityProfile
from apps.quality.selectors import ResolvedProfile, goal_timings, quality_profile_for_offer
from apps.quality.signals import DEFAULT_WEIGHTS, REPEAT_IP_WINDOW, Reason, Signal
from apps.tracking.models import Click

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_WEIGHTS", "REPEAT_IP_WINDOW", "QualityResult", "Reason", "quality_score"]


@dataclass(frozen=True)
class QualityResult:
    score: int
    reasons: list[str] = field(default_factory=list)
    evidence: dict[str, dict[str, object]] = field(default_factory=dict, compare=False)
    action: QualityAction = field(default=QualityAction.APPROVE, compare=False)
    rule_version: str = field(default="", compare=False)
    # What later conversions are compared against (hashes only).
    ua_ip_hash: str = field(default="", compare=False)
    email_hash: str = field(default="", compare=False)
    phone_hash: str = field(default="", compare=False)


def quality_combine(*, fired: Iterable[Signal], profile: ResolvedProfile) -> tuple[int, list[str]]:
    """100 minus the weights of the signals that fired, clamped at 0; reasons in firing order."""
    reasons: list[str] = []
    for signal in fired:
        if signal.code not in reasons:
            reasons.append(signal.code)
    score = max(0, 100 - sum(profile.weight(code) for code in reasons))
    return score, reasons


def quality_score(
    *,
    click: Click,
    offer: Offer,
    conversion_ip: str | None,
    conversion_country: str,
    now: datetime,
    goal: Goal | None = None,
    email: str = "",
    email_hash: str | None = None,
    phone: str = "",
    profile: ResolvedProfile | None = None,
    history: sig.History | None = None,
) -> QualityResult:
    """Score a conversion from its click and what the postback says, with the fast signals only
    (the behavioural ones need many conversions: apps.quality.behaviour). `email_hash` (of
    `email`, leads.email_key) and `history` (read with the click: signals.history_with_click)
    when the caller has them already; else computed and read here."""
    profile = profile or quality_profile_for_offer(offer=offer)
    timings = goal_timings(goal=goal, offer=offer)
    # A conversion attributed by coupon code has no click, so no click-to-conversion time.
    seconds = (now - click.created_at).total_seconds() if click.created_at else None
    ip = conversion_ip or click.ip
    email_hash = email_key(email) if email_hash is None else email_hash
    phone_hash = ""
    if phone.strip():
        checked = phone_check(phone, country=click.country)
        if checked.e164:
            phone_hash = lead_hash("phone:" + checked.e164)
    # The click's own IP: the key the drain stored with it (when it did), not computed again.
    ua_ip_hash = (
        click.ua_ip_hash
        if click.ua_ip_hash and not conversion_ip
        else device_key(click.user_agent, ip)
    )

    timing = (
        []
        if seconds is None
        else [
            sig.signal_too_fast(seconds=seconds, min_seconds=timings.min_seconds),
            sig.signal_too_slow(seconds=seconds, max_seconds=timings.max_seconds),
        ]
    )
    history = (
        history
        if history is not None
        else sig.history_read(
            ip=ip,
            offer_id=offer.pk,
            affiliate_id=click.affiliate_id,
            click_id=click.click_id,
            ua_ip_hash=ua_ip_hash,
            email_hash=email_hash,
            phone_hash=phone_hash,
            now=now,
        )
    )
    fired = [
        *timing,
        sig.signal_repeat_ip_on_offer(ip=ip, history=history),
        sig.signal_repeat_ip_on_affiliate(ip=ip, history=history),
        sig.signal_bot_user_agent(is_bot=click.is_bot, user_agent=click.user_agent),
        sig.signal_non_browser(non_browser=click.non_browser, is_bot=click.is_bot),
        sig.signal_country_mismatch(
            click_country=click.country, conversion_country=conversion_country
        ),
        sig.signal_country_not_targeted(
            click_country=click.country,
            allowed=list(offer.allowed_countries),
            blocked=list(offer.blocked_countries),
        ),
        sig.signal_datacenter_ip(click_ip=click.ip, conversion_ip=conversion_ip),
        sig.signal_same_device_across_subs(sub1=click.sub1, history=history),
        sig.signal_email(email=email),
        sig.signal_phone(phone=phone, country=click.country),
        *sig.signal_lead_seen(history=history),
    ]
    seen = [signal for signal in fired if signal is not None]
    score, reasons = quality_combine(fired=seen, profile=profile)
    return QualityResult(
        score=score,
        reasons=reasons,
        evidence={signal.code: signal.evidence for signal in seen},
        action=profile.action_for(score),
        rule_version=profile.rule_version,
        ua_ip_hash=ua_ip_hash,
        email_hash=email_hash,
        phone_hash=phone_hash,
    )


def quality_status(*, status: ConversionStatus, action: QualityAction) -> ConversionStatus:
    """What the score's band does to the status the advertiser sent: a hold turns approved into
    pending; a reject rejects approved and pending; nothing ever turns into approved."""
    if action == QualityAction.HOLD and status == ConversionStatus.APPROVED:
        return ConversionStatus.PENDING
    if action == QualityAction.REJECT and status in (
        ConversionStatus.APPROVED,
        ConversionStatus.PENDING,
    ):
        return ConversionStatus.REJECTED
    return status


def quality_fingerprint_follower(*, conversion: Conversion, result: QualityResult) -> Follower:
    """The hashes later conversions are compared against, written by the conversion's own
    INSERT (apps.common.db.insert_with_followers)."""
    return follower_insert(
        model_new(
            LeadFingerprint,
            offer_id=conversion.offer_id,
            affiliate_id=conversion.affiliate_id,
            sub1=conversion.sub1,
            ua_ip_hash=result.ua_ip_hash,
            email_hash=result.email_hash,
            phone_hash=result.phone_hash,
            created_at=conversion.created_at,
        ),
        link="conversion",
    )


@transaction.atomic
def quality_profile_save(*, profile: QualityProfile) -> QualityProfile:
    """Save a profile under a new revision: conversions record which revision scored them."""
    if profile.pk is not None:
        QualityProfile.objects.filter(pk=profile.pk).update(revision=F("revision") + 1)
        profile.revision = QualityProfile.objects.values_list("revision", flat=True).get(
            pk=profile.pk
        )
    profile.save()
    return profile


def review_decide(
    *, conversion_ids: Iterable[int], status: ConversionStatus, user_id: int | None, now: datetime
) -> int:
    """Staff approve or reject conversions held for review. Only pending ones move; each move
    leaves a note and, after commit, tells the affiliate and the ledger. Returns how many moved."""
    if status not in (ConversionStatus.APPROVED, ConversionStatus.REJECTED):
        raise ValueError("review moves conversions to approved or rejected only")
    from apps.conversions.status import conversions_status_change  # noqa: PLC0415

    with transaction.atomic():
        pending = Conversion.objects.select_for_update().filter(
            pk__in=list(conversion_ids), status=ConversionStatus.PENDING
        )
        moved = [conversion.pk for conversion in pending]
        for conversion in pending:
            QualityNote.objects.create(
                conversion=conversion,
                created_at=now,
                old_score=conversion.quality_score,
                new_score=conversion.quality_score,
                reasons=conversion.quality_reasons,
                evidence=conversion.quality_evidence,
                status=status,
                action=(
                    QualityAction.APPROVE
                    if status == ConversionStatus.APPROVED
                    else QualityAction.REJECT
                ),
                author_id=user_id,
                text="reviewed by staff",
            )
        conversions_status_change(
            conversion_ids=moved,
            new_status=status,
            source=StatusChangeSource.QUALITY_REVIEW,
            now=now,
            user_id=user_id,
            reason="reviewed by staff",
            only_from=[ConversionStatus.PENDING],
        )
    return len(moved)
