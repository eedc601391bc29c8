"""Reads: the scoring profile in force for an offer, goal timings, and the quality report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from django.conf import settings

from apps.conversions.models import Conversion
from apps.offers.models import Goal, Offer
from apps.quality.models import GoalQualitySetting, QualityAction, QualityProfile
from apps.quality.signals import DEFAULT_WEIGHTS
from apps.tracking import catalog

ENGINE_VERSION = "q2"


@dataclass(frozen=True)
class ResolvedProfile:
    weights: dict[str, int]
    hold_below: int
    reject_below: int
    auto_reject: bool
    rule_version: str

    def weight(self, code: str) -> int:
        return self.weights.get(code, DEFAULT_WEIGHTS.get(code, 0))

    def action_for(self, score: int) -> QualityAction:
        """Bands: hold_below and up is approved; under reject_below is rejected (when the offer
        allows automatic rejection); anything between is held for review."""
        if score >= self.hold_below:
            return QualityAction.APPROVE
        if score < self.reject_below and self.auto_reject:
            return QualityAction.REJECT
        return QualityAction.HOLD


def _clean_weights(raw: object) -> dict[str, int]:
    if not isinstance(raw, dict):
        return {}
    weights = {}
    for code, value in raw.items():
        if isinstance(code, str) and isinstance(value, int) and not isinstance(value, bool):
            weights[code] = max(0, min(100, value))
    return weights


def quality_profile_for_offer(*, offer: Offer) -> ResolvedProfile:
    """Built-in weights, then the network default's, then the offer's own; bands from the offer's
    profile if it has one, else the network default; hold threshold falls back to the offer's
    quality_threshold. Kept in the catalog (profiles tell it when they change)."""
    return catalog.cached(  # type: ignore[no-any-return]
        "quality-profile", (offer.pk, offer.quality_threshold), _profile_resolve
    )


def _profile_resolve(key: tuple[int, int]) -> ResolvedProfile:
    offer_id, quality_threshold = key
    profiles = {
        profile.offer_id: profile
        for profile in QualityProfile.objects.filter(offer__isnull=True)
        | QualityProfile.objects.filter(offer_id=offer_id)
    }
    network = profiles.get(None)
    own = profiles.get(offer_id)
    weights = dict(DEFAULT_WEIGHTS)
    for profile in (network, own):
        if profile is not None:
            weights.update(_clean_weights(profile.weights))
    bands = own or network
    hold_below = quality_threshold
    if bands is not None and bands.hold_below is not None:
        hold_below = bands.hold_below
    version = (
        f"{ENGINE_VERSION}:n{network.revision if network else 0}:o{own.revision if own else 0}"
    )
    return ResolvedProfile(
        weights=weights,
        hold_below=hold_below,
        reject_below=bands.reject_below if bands else settings.QUALITY_REJECT_BELOW,
        auto_reject=bands.auto_reject if bands else True,
        rule_version=version,
    )


@dataclass(frozen=True)
class GoalTimings:
    min_seconds: float
    max_seconds: float | None


def _goal_setting(goal_id: int) -> GoalQualitySetting | None:
    return GoalQualitySetting.objects.filter(goal_id=goal_id).first()


def goal_timings(*, goal: Goal | None, offer: Offer) -> GoalTimings:
    setting = catalog.cached("goal-quality", goal.pk, _goal_setting) if goal is not None else None
    if setting is not None:
        return GoalTimings(setting.min_seconds, setting.max_seconds)
    return GoalTimings(float(offer.min_seconds_to_convert), settings.QUALITY_MAX_SECONDS_TO_CONVERT)


class ReportRow(TypedDict):
    affiliate_id: int
    sub1: str
    conversions: int
    flagged: int
    flagged_share: float
    top_reasons: list[tuple[str, int]]


def quality_report(
    *,
    date_from: datetime,
    date_to: datetime,
    offer_id: int | None = None,
    affiliate_id: int | None = None,
    flag_below: int | None = None,
    top: int = 3,
) -> list[ReportRow]:
    """Per affiliate and sub id: conversions, how many were flagged (scored below `flag_below`,
    default the network's QUALITY_FLAG_BELOW), their share, and the most frequent reasons."""
    threshold = settings.QUALITY_FLAG_BELOW if flag_below is None else flag_below
    conversions = Conversion.objects.filter(created_at__gte=date_from, created_at__lt=date_to)
    if offer_id is not None:
        conversions = conversions.filter(offer_id=offer_id)
    if affiliate_id is not None:
        conversions = conversions.filter(affiliate_id=affiliate_id)
    groups: dict[tuple[int, str], tuple[int, int, Counter[str]]] = {}
    rows = conversions.values_list("affiliate_id", "sub1", "quality_score", "quality_reasons")
    for aff, sub1, score, reasons in rows.iterator(chunk_size=2000):
        total, flagged, counter = groups.get((aff, sub1), (0, 0, Counter()))
        counter.update(r for r in reasons or [] if isinstance(r, str))
        groups[(aff, sub1)] = (total + 1, flagged + (score < threshold), counter)
    report: list[ReportRow] = []
    for (aff, sub1), (total, flagged, counter) in sorted(groups.items()):
        report.append(
            ReportRow(
                affiliate_id=aff,
                sub1=sub1,
                conversions=total,
                flagged=flagged,
                flagged_share=round(flagged / total, 4),
                top_reasons=counter.most_common(top),
            )
        )
    return report
