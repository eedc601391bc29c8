"""The two network choices of the quality engine: evidence shown to affiliates, and whether a
re-score may reverse an approved conversion (through the ledger) or only note it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from apps.commissions.models import EntryKind, LedgerEntry
from apps.commissions.services import commission_accrue
from apps.offers.models import ConversionStatus
from apps.quality.behaviour import RescoreOutcome, _rescore_one
from apps.quality.models import QualityNote
from apps.quality.selectors import quality_profile_for_offer
from apps.quality.signals import Reason, Signal
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversion(affiliate):
    offer = factories.OfferFactory()
    click = factories.ClickFactory(offer=offer, affiliate=affiliate)
    return factories.ConversionFactory(
        click=click,
        quality_score=100,
        quality_reasons=[],
        quality_evidence={"datacenter_ip": {"asn": "Example Hosting"}},
    )


@pytest.mark.parametrize("shown", [False, True])
def test_affiliates_see_evidence_only_when_the_network_allows(
    settings, affiliate_client, affiliate, conversion, shown
):
    settings.QUALITY_SHOW_EVIDENCE_TO_AFFILIATES = shown
    row = affiliate_client.get("/api/v1/affiliate/conversions/").json()["results"][0]
    assert row["conversion_id"] == conversion.pk
    assert row["quality_reasons"] == []
    if shown:
        assert row["quality_evidence"] == {"datacenter_ip": {"asn": "Example Hosting"}}
    else:
        assert "quality_evidence" not in row


def _rescore_to_reject(conversion):
    profile = quality_profile_for_offer(offer=conversion.offer)
    # Enough behavioural evidence to fall below the reject band with default weights.
    behaviour = [
        Signal(Reason.TIMES_BUNCHED, {"median_seconds": 2}),
        Signal(Reason.CR_ABOVE_NORM, {"cr": 0.9}),
        Signal(Reason.VOLUME_SPIKE, {"last_hour": 50}),
    ]
    outcome = RescoreOutcome()
    _rescore_one(
        conversion=conversion,
        behaviour=behaviour,
        profile=profile,
        now=timezone.now(),
        outcome=outcome,
    )
    conversion.refresh_from_db()
    return outcome


@pytest.mark.parametrize("reverses", [False, True])
def test_rescore_of_an_approved_conversion_notes_or_reverses_through_the_ledger(
    settings, conversion, reverses, django_capture_on_commit_callbacks
):
    settings.QUALITY_RESCORE_REVERSES_APPROVED = reverses
    commission_accrue()
    assert LedgerEntry.objects.get(conversion=conversion).amount == Decimal("2.50")

    with django_capture_on_commit_callbacks(execute=False):
        outcome = _rescore_to_reject(conversion)
    commission_accrue()

    note = QualityNote.objects.get(conversion=conversion)
    entries = sorted(
        LedgerEntry.objects.filter(conversion=conversion).values_list("kind", "amount")
    )
    if reverses:
        assert conversion.status == ConversionStatus.REVERSED
        assert outcome.moved == 1
        assert note.text == "re-score reversed an approved conversion"
        assert entries == [
            (EntryKind.COMMISSION, Decimal("2.50")),
            (EntryKind.REVERSAL, Decimal("-2.50")),
        ]
    else:
        assert conversion.status == ConversionStatus.APPROVED
        assert outcome.noted == 1
        assert note.text == "re-score would reject; status kept"
        assert entries == [(EntryKind.COMMISSION, Decimal("2.50"))]
