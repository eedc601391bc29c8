"""Referral commissions: a referrer earns a percent of each commission of the affiliates it
referred, within the referral window, rounded half-up per entry, reversed with the commission."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from apps.commissions.models import EntryKind, LedgerEntry
from apps.commissions.selectors import ledger_check
from apps.commissions.services import (
    balance_for_affiliate,
    commission_accrue,
    commission_accrue_queued,
)
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus, PayoutTier
from apps.partners.models import Affiliate
from tests import factories
from tests.commissions.conftest import T0
from tests.commissions.test_ledger_check import _raw

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)
LATER = T0 + dt.timedelta(days=400)


@pytest.fixture
def referrer(db):
    return factories.AffiliateFactory(name="Referrer")


@pytest.fixture
def referred(affiliate, referrer):
    """The `affiliate` fixture (whose conversions `convert` makes), referred at 10 %."""
    Affiliate.objects.filter(pk=affiliate.pk).update(
        referrer=referrer, referral_percent=Decimal("10"), created_at=T0 - DAY
    )
    affiliate.refresh_from_db()
    return affiliate


def _ledger() -> list[tuple]:
    return list(
        LedgerEntry.objects.order_by("id").values_list(
            "conversion_id", "kind", "cycle", "amount", "currency", "affiliate_id", "rate"
        )
    )


def test_referrer_earns_its_percent_of_each_commission(referred, referrer, convert):
    conversion = convert(created_at=T0, payout=Decimal("2.55"))  # 0.255 -> 0.26

    assert commission_accrue(now=T0) == 2

    assert _ledger() == [
        (conversion.pk, "commission", 0, Decimal("2.55"), "USD", referred.pk, None),
        (conversion.pk, "referral", 0, Decimal("0.26"), "USD", referrer.pk, Decimal("10")),
    ]
    referral = LedgerEntry.objects.get(kind=EntryKind.REFERRAL)
    commission = LedgerEntry.objects.get(kind=EntryKind.COMMISSION)
    assert referral.memo == f"referral: affiliate {referred.pk}, conversion {conversion.pk}"
    assert referral.available_at == commission.available_at  # it follows the commission's hold
    assert commission_accrue(now=T0) == 0
    assert balance_for_affiliate(affiliate_id=referrer.pk) == {"USD": Decimal("0.26")}
    assert balance_for_affiliate(affiliate_id=referred.pk) == {"USD": Decimal("2.55")}
    assert ledger_check(settled_before=LATER) == []


@pytest.mark.parametrize(
    "case",
    [
        ("USD", Decimal("2.50"), Decimal("10"), Decimal("0.25")),
        ("USD", Decimal("0.25"), Decimal("10"), Decimal("0.03")),  # 0.025: half-up
        ("USD", Decimal("1.15"), Decimal("5"), Decimal("0.06")),  # 0.0575
        ("JPY", Decimal("1012"), Decimal("12.5"), Decimal("127")),  # 126.5 yen: half-up, not 126
        ("JPY", Decimal("1004"), Decimal("12.5"), Decimal("126")),  # 125.5
        ("JPY", Decimal("1002"), Decimal("12.5"), Decimal("125")),  # 125.25
        ("KRW", Decimal("999"), Decimal("0.05"), Decimal("0")),  # 0.4995 won: nothing
        ("USD", Decimal("0.09"), Decimal("5"), Decimal("0")),  # 0.0045: nothing
    ],
)
def test_rounding_half_up_to_the_minor_unit(referred, convert, case):
    currency, payout, percent, expected = case
    Affiliate.objects.filter(pk=referred.pk).update(referral_percent=percent)
    conversion = convert(created_at=T0, payout=payout, currency=currency)
    commission_accrue(now=T0)
    referrals = list(
        LedgerEntry.objects.filter(kind=EntryKind.REFERRAL).values_list(
            "amount", "currency", "conversion_id"
        )
    )
    # A share that rounds to nothing is not written: no zero entries.
    assert referrals == ([(expected, currency, conversion.pk)] if expected else [])
    assert ledger_check(settled_before=LATER) == []


def test_network_default_percent_and_none_without_a_referrer(
    referred, referrer, convert, affiliate, settings
):
    settings.COMMISSIONS_REFERRAL_PERCENT = Decimal("5")
    Affiliate.objects.filter(pk=referred.pk).update(referral_percent=None)
    not_referred = factories.AffiliateFactory()
    mine = convert(created_at=T0, payout=Decimal("10.00"))
    convert(created_at=T0, payout=Decimal("10.00"), by=not_referred)
    commission_accrue(now=T0)
    assert list(
        LedgerEntry.objects.filter(kind=EntryKind.REFERRAL).values_list(
            "conversion_id", "amount", "rate", "affiliate_id"
        )
    ) == [(mine.pk, Decimal("0.50"), Decimal("5"), referrer.pk)]

    settings.COMMISSIONS_REFERRAL_PERCENT = Decimal("0")
    convert(created_at=T0, payout=Decimal("10.00"))
    commission_accrue(now=T0)
    assert LedgerEntry.objects.filter(kind=EntryKind.REFERRAL).count() == 1


def test_referral_window_ends_at_the_end_date(referred, convert):
    ends = T0 + 2 * DAY
    Affiliate.objects.filter(pk=referred.pk).update(referral_ends_at=ends)
    inside = convert(created_at=ends - dt.timedelta(seconds=1))
    at_end = convert(created_at=ends)
    after = convert(created_at=ends + DAY)
    commission_accrue(now=ends + 2 * DAY)
    assert list(
        LedgerEntry.objects.filter(kind=EntryKind.REFERRAL).values_list("conversion_id", flat=True)
    ) == [inside.pk]
    assert {at_end.pk, after.pk} <= set(
        LedgerEntry.objects.filter(kind=EntryKind.COMMISSION).values_list(
            "conversion_id", flat=True
        )
    )


def test_default_window_is_days_after_the_referred_affiliate_joined(referred, convert, settings):
    settings.COMMISSIONS_REFERRAL_DAYS = 30
    joined = T0 - DAY
    last = convert(created_at=joined + 30 * DAY - dt.timedelta(seconds=1))
    convert(created_at=joined + 30 * DAY)
    commission_accrue(now=T0 + 40 * DAY)
    assert list(
        LedgerEntry.objects.filter(kind=EntryKind.REFERRAL).values_list("conversion_id", flat=True)
    ) == [last.pk]

    settings.COMMISSIONS_REFERRAL_DAYS = 0  # no end
    forever = convert(created_at=joined + 3000 * DAY)
    commission_accrue(now=T0 + 40 * DAY)
    assert LedgerEntry.objects.filter(kind=EntryKind.REFERRAL, conversion=forever).exists()


@pytest.mark.parametrize("status", [ConversionStatus.REJECTED, ConversionStatus.REVERSED])
def test_reversal_takes_the_referral_back_exactly(referred, referrer, convert, status):
    conversion = convert(created_at=T0, payout=Decimal("2.55"))
    commission_accrue(now=T0)
    # The referrer's terms change afterwards: the reversal takes back what was credited.
    Affiliate.objects.filter(pk=referred.pk).update(referral_percent=Decimal("50"))
    Conversion.objects.filter(pk=conversion.pk).update(status=status)

    assert commission_accrue(now=T0 + DAY) == 2
    assert commission_accrue(now=T0 + DAY) == 0

    assert _ledger() == [
        (conversion.pk, "commission", 0, Decimal("2.55"), "USD", referred.pk, None),
        (conversion.pk, "referral", 0, Decimal("0.26"), "USD", referrer.pk, Decimal("10")),
        (conversion.pk, "reversal", 0, Decimal("-2.55"), "USD", referred.pk, None),
        (
            conversion.pk,
            "referral_reversal",
            0,
            Decimal("-0.26"),
            "USD",
            referrer.pk,
            Decimal("10"),
        ),
    ]
    assert balance_for_affiliate(affiliate_id=referrer.pk) == {"USD": Decimal("0.00")}
    assert ledger_check(settled_before=LATER) == []


def test_re_approval_earns_a_new_referral_at_the_new_terms(referred, referrer, convert):
    conversion = convert(created_at=T0, payout=Decimal("2.50"))
    commission_accrue(now=T0)
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.REJECTED)
    commission_accrue(now=T0)
    Affiliate.objects.filter(pk=referred.pk).update(referral_percent=Decimal("20"))
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.APPROVED)
    commission_accrue(now=T0)
    assert list(
        LedgerEntry.objects.filter(affiliate=referrer)
        .order_by("id")
        .values_list("kind", "cycle", "amount")
    ) == [
        ("referral", 0, Decimal("0.25")),
        ("referral_reversal", 0, Decimal("-0.25")),
        ("referral", 1, Decimal("0.50")),
    ]
    assert balance_for_affiliate(affiliate_id=referrer.pk) == {"USD": Decimal("0.50")}


def test_referral_is_cut_from_the_tier_payout(referred, referrer, convert, offer):
    PayoutTier.objects.create(offer=offer, name="Gold", threshold=1, payout=Decimal("7.00"))
    convert(created_at=T0)
    commission_accrue(now=T0)
    assert LedgerEntry.objects.get(kind=EntryKind.REFERRAL).amount == Decimal("0.70")


def test_referrals_are_not_retroactive(affiliate, referrer, convert):
    """Only commissions written while the affiliate has a referrer earn the referrer anything: a
    rescan after the referrer was set does not go back over old commissions."""
    old = convert(created_at=T0)
    commission_accrue(now=T0)
    Affiliate.objects.filter(pk=affiliate.pk).update(
        referrer=referrer, referral_percent=Decimal("10"), created_at=T0 - DAY
    )
    commission_accrue(now=T0 + DAY)
    new = convert(created_at=T0 + DAY)
    commission_accrue_queued(now=T0 + DAY)
    assert list(
        LedgerEntry.objects.filter(kind=EntryKind.REFERRAL).values_list("conversion_id", flat=True)
    ) == [new.pk]
    assert old.pk != new.pk


def test_one_referral_per_conversion_and_cycle_by_database_rule(referred, referrer, convert):
    conversion = convert(created_at=T0)
    commission_accrue(now=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            affiliate=referrer,
            kind=EntryKind.REFERRAL,
            amount=Decimal("1.00"),
            currency="USD",
            conversion=conversion,
            cycle=0,
        )


def test_an_affiliate_cannot_refer_itself(affiliate):
    with pytest.raises(IntegrityError), transaction.atomic():
        Affiliate.objects.filter(pk=affiliate.pk).update(referrer=affiliate)
    with pytest.raises(IntegrityError), transaction.atomic():
        Affiliate.objects.filter(pk=affiliate.pk).update(referral_percent=Decimal("100.5"))


# --- reconciliation -----------------------------------------------------------------------------


@pytest.fixture
def reversed_referral(referred, convert):
    conversion = convert(created_at=T0, payout=Decimal("2.50"))
    commission_accrue(now=T0)
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.REJECTED)
    commission_accrue(now=T0)
    assert ledger_check(settled_before=LATER) == []
    return conversion


def _checks() -> list[str]:
    return [d.check for d in ledger_check(settled_before=LATER)]


def test_check_reports_a_referral_of_the_wrong_amount(reversed_referral):
    _raw("UPDATE commissions_ledgerentry SET amount = 0.24 WHERE kind = 'referral'")
    assert _checks() == ["referral_not_matching_commission", "referral_reversal_not_matching"]


def test_check_reports_a_referral_kept_after_its_commission_was_reversed(reversed_referral):
    _raw("DELETE FROM commissions_ledgerentry WHERE kind = 'referral_reversal'")
    assert _checks() == ["referral_live_after_commission_reversed"]


def test_check_reports_a_referral_reversal_without_a_commission_reversal(reversed_referral):
    _raw("DELETE FROM commissions_ledgerentry WHERE kind = 'reversal'")
    assert "referral_reversal_not_matching" in _checks()
