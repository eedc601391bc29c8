"""Profiles (weights, bands, opt-out of rejection), rule versions, the postback call site, the
behavioural re-score, and staff review."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversions import services as conversion_services
from apps.conversions.models import Conversion, ConversionStatusChange, InboundPostbackLog
from apps.offers.models import ConversionStatus
from apps.quality import behaviour
from apps.quality.models import (
    GoalQualitySetting,
    LeadFingerprint,
    QualityAction,
    QualityNote,
    QualityProfile,
)
from apps.quality.selectors import quality_profile_for_offer, quality_report
from apps.quality.services import Reason, quality_profile_save, review_decide
from tests import factories

pytestmark = pytest.mark.django_db
TOKEN = factories.ADVERTISER_TOKEN


@pytest.fixture
def goal(db):
    goal = factories.GoalFactory(offer=factories.OfferFactory(), code="lead")
    GoalQualitySetting.objects.create(goal=goal)  # 15 s .. 24 h
    return goal


@pytest.fixture
def click(goal):
    return factories.ClickFactory(
        offer=goal.offer, created_at=timezone.now() - timedelta(minutes=1)
    )


def _record(click, **extra):
    params = conversion_services.postback_params_parse(
        {"click_id": click.click_id, "token": TOKEN, **extra}
    )
    return conversion_services.conversion_record(
        params=params, request_ip="127.0.0.1", now=timezone.now()
    )[0]


def test_bands_from_the_offer_threshold_and_network_default(goal):
    profile = quality_profile_for_offer(offer=goal.offer)
    assert (profile.hold_below, profile.reject_below, profile.auto_reject) == (50, 20, True)
    assert profile.rule_version == "q2:n1:o0"
    assert [profile.action_for(s) for s in (50, 49, 20, 19, 0)] == [
        QualityAction.APPROVE,
        QualityAction.HOLD,
        QualityAction.HOLD,
        QualityAction.REJECT,
        QualityAction.REJECT,
    ]


def test_offer_profile_overrides_weights_and_bands_and_bumps_revision(goal):
    network = QualityProfile.objects.get(offer=None)
    network.weights = {Reason.BOT_USER_AGENT: 90, "bogus": "x"}
    quality_profile_save(profile=network)
    own = quality_profile_save(
        profile=QualityProfile(
            offer=goal.offer, weights={Reason.COUNTRY_MISMATCH: 70}, hold_below=80
        )
    )
    quality_profile_save(profile=own)
    profile = quality_profile_for_offer(offer=goal.offer)
    assert profile.weight(Reason.BOT_USER_AGENT) == 90
    assert profile.weight(Reason.COUNTRY_MISMATCH) == 70
    assert profile.weight("bogus") == 0
    assert (profile.hold_below, profile.rule_version) == (80, "q2:n2:o2")


def test_postback_stores_evidence_version_fingerprint_and_masks_lead_data(client, click):
    response = client.get(
        "/postback",
        {"click_id": click.click_id, "token": TOKEN, "email": "x@mailinator.com", "phone": "1"},
    )
    assert response.json()["status"] == "rejected"  # 100 - 55 - 55 = 0: the reject band
    conversion = Conversion.objects.get()
    assert (conversion.quality_score, conversion.quality_reasons) == (
        0,
        [Reason.EMAIL_DISPOSABLE, Reason.PHONE_INVALID],
    )
    assert conversion.quality_evidence == {
        Reason.EMAIL_DISPOSABLE: {"domain": "mailinator.com"},
        Reason.PHONE_INVALID: {"country": "GB", "number_region": ""},
    }
    assert conversion.quality_rule_version == "q2:n1:o0"
    fingerprint = LeadFingerprint.objects.get(conversion=conversion)
    assert fingerprint.email_hash != "" and "mailinator" not in fingerprint.email_hash
    log = InboundPostbackLog.objects.get()
    assert (log.params["email"], log.params["phone"]) == ("***", "***")


def test_offer_can_opt_out_of_auto_reject(click):
    QualityProfile.objects.create(offer=click.offer, auto_reject=False)
    conversion = _record(click, email="bad", phone="1")
    assert (conversion.status, conversion.quality_score) == ("pending", 0)


def test_garbage_lead_fields_never_crash(click):
    conversion = _record(click, email="\x00" * 10 + "@", phone="☎" * 20)
    assert conversion.quality_reasons == [Reason.EMAIL_INVALID, Reason.PHONE_INVALID]


# --- behaviour -----------------------------------------------------------------------------------


def _conversions(
    goal, *, n, sub1, seconds, status=ConversionStatus.APPROVED, ip_base=10, affiliate=None
):
    now = timezone.now()
    affiliate = affiliate or factories.AffiliateFactory()
    made = []
    for i in range(n):
        click = factories.ClickFactory(
            offer=goal.offer,
            sub1=sub1,
            affiliate=affiliate,
            ip=f"81.2.69.{ip_base + i}",
            created_at=now - timedelta(seconds=seconds[i % len(seconds)]) - timedelta(minutes=1),
        )
        made.append(
            factories.ConversionFactory(
                click=click,
                goal=goal,
                status=status,
                created_at=now - timedelta(minutes=1),
            )
        )
    return made


def test_times_bunched_signal():
    timing = behaviour.Timing
    bunched = [timing(3, 15, 86400)] * 4 + [timing(100, 15, 86400)]
    assert behaviour.signal_times_bunched(timings=bunched).evidence == {
        "conversions": 5,
        "share_within": 0.8,
        "median_seconds": 3,
    }
    assert behaviour.signal_times_bunched(timings=bunched[:4]) is None  # too few
    assert behaviour.signal_times_bunched(timings=[timing(60, 15, 86400)] * 5) is None


def test_times_flat_signal():
    timing = behaviour.Timing
    flat = [timing(s, 15, 86400) for s in (4000, 20000, 40000, 70000, 120)]
    assert behaviour.signal_times_flat(timings=flat).code == Reason.TIMES_FLAT
    assert behaviour.signal_times_flat(timings=[timing(300, 15, 86400)] * 5) is None


def test_cr_and_spike_signals():
    assert behaviour.signal_cr_above_norm(
        sub_clicks=20, sub_conversions=10, offer_clicks=220, offer_conversions=20
    ).evidence == {"sub_cr": 0.5, "offer_cr": 0.05, "clicks": 20}
    assert (
        behaviour.signal_cr_above_norm(
            sub_clicks=100, sub_conversions=6, offer_clicks=1100, offer_conversions=66
        )
        is None
    )
    assert behaviour.signal_volume_spike(last_hour=10, earlier=0, earlier_hours=23).code == (
        Reason.VOLUME_SPIKE
    )
    assert behaviour.signal_volume_spike(last_hour=10, earlier=46, earlier_hours=23) is None


def test_rescore_moves_pending_notes_approved_and_is_idempotent(goal):
    pending = _conversions(goal, n=5, sub1="inj", seconds=[2], status="pending")
    approved = _conversions(goal, n=5, sub1="inj2", seconds=[2], ip_base=50)
    normal = _conversions(goal, n=5, sub1="ok", seconds=[300], ip_base=90)
    for conversion in pending:
        conversion.quality_score, conversion.quality_reasons = 45, [Reason.TOO_FAST]
        conversion.save()
    outcome = behaviour.quality_rescore_offer(
        offer_id=goal.offer_id, now=timezone.now(), window_hours=24
    )
    assert (outcome.rescored, outcome.moved, outcome.noted) == (10, 5, 5)
    first = Conversion.objects.get(pk=pending[0].pk)
    assert (first.status, first.quality_score) == ("rejected", 0)
    assert first.quality_reasons == [Reason.TOO_FAST, Reason.TIMES_BUNCHED]
    kept = Conversion.objects.get(pk=approved[0].pk)
    assert (kept.status, kept.quality_score, kept.quality_reasons) == (
        "approved",
        45,
        [Reason.TIMES_BUNCHED],
    )
    note = QualityNote.objects.get(conversion=kept)
    assert (note.old_score, note.new_score, note.action) == (100, 45, "hold")
    assert Conversion.objects.get(pk=normal[0].pk).quality_reasons == []
    again = behaviour.quality_rescore_offer(
        offer_id=goal.offer_id, now=timezone.now(), window_hours=24
    )
    assert (again.rescored, QualityNote.objects.count()) == (0, 10)


def test_ip_cluster_flags_the_first_of_a_repeat(goal):
    first, second = _conversions(goal, n=2, sub1="s", seconds=[300], ip_base=7)
    second.click_ip = first.click_ip
    second.quality_reasons = [Reason.REPEAT_IP]
    second.save()
    behaviour.quality_rescore_offer(offer_id=goal.offer_id, now=timezone.now(), window_hours=24)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.quality_reasons == [Reason.IP_CLUSTER]
    assert second.quality_reasons == [Reason.REPEAT_IP]


def test_rescore_task_fans_out(goal):
    from apps.quality import tasks

    _conversions(goal, n=5, sub1="inj", seconds=[2])
    # Unit test of the task body: .apply() runs it here. The real worker runs the same job in
    # tests/flows.
    tasks.rescore_offer.apply(args=[goal.offer_id])
    assert QualityNote.objects.count() == 5
    tasks.rescore_offer.apply(args=[999_999])  # a missing offer is dropped


# --- review and report ---------------------------------------------------------------------------


def test_review_decide_moves_only_pending(goal):
    pending = _conversions(goal, n=2, sub1="x", seconds=[300], status="pending")
    approved = _conversions(goal, n=1, sub1="x", seconds=[300], ip_base=40)
    moved = review_decide(
        conversion_ids=[c.pk for c in pending + approved],
        status=ConversionStatus.REJECTED,
        user_id=None,
        now=timezone.now(),
    )
    assert moved == 2
    assert ConversionStatusChange.objects.filter(new_status="rejected").count() == 2
    assert sorted(Conversion.objects.values_list("status", flat=True)) == [
        "approved",
        "rejected",
        "rejected",
    ]
    assert QualityNote.objects.filter(action="reject").count() == 2
    with pytest.raises(ValueError):
        review_decide(conversion_ids=[], status=ConversionStatus.PENDING, user_id=None, now=None)


def test_quality_report_by_affiliate_and_sub(goal, django_assert_num_queries):
    affiliate = factories.AffiliateFactory()
    good = _conversions(goal, n=3, sub1="a", seconds=[300], affiliate=affiliate)
    bad = _conversions(goal, n=2, sub1="b", seconds=[300], ip_base=60, affiliate=affiliate)
    for conversion in [good[0], *bad]:
        conversion.quality_score, conversion.quality_reasons = 40, [Reason.BOT_USER_AGENT]
        conversion.save()
    now = timezone.now()
    with django_assert_num_queries(1):
        report = quality_report(date_from=now - timedelta(days=1), date_to=now)
    aff = good[0].affiliate_id
    by_sub = {row["sub1"]: row for row in report if row["affiliate_id"] == aff}
    assert by_sub["a"]["conversions"] == 3 and by_sub["a"]["flagged"] == 1
    assert by_sub["a"]["flagged_share"] == 0.3333
    assert by_sub["a"]["top_reasons"] == [(Reason.BOT_USER_AGENT, 1)]
