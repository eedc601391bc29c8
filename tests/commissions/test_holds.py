"""Holds: entries carry available_at; pending / available / paid is derived, never stored."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from apps.commissions.models import LedgerEntry
from apps.commissions.selectors import Balance, balance_breakdown_for_affiliate
from apps.commissions.services import commission_accrue
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus
from tests.commissions.conftest import T0

pytestmark = pytest.mark.django_db
DAY = dt.timedelta(days=1)


def _breakdown(affiliate, now):
    return balance_breakdown_for_affiliate(affiliate_id=affiliate.pk, now=now)


def _entries():
    return list(
        LedgerEntry.objects.order_by("id").values_list("kind", "cycle", "amount", "available_at")
    )


@pytest.fixture
def held(offer):
    offer.hold_days = 7
    offer.save(update_fields=["hold_days"])
    return offer


def test_hold_days_default_to_zero(offer):
    assert offer.hold_days == 0


def test_commission_is_pending_for_the_hold_then_available(held, convert, affiliate):
    convert(payout=Decimal("2.50"), created_at=T0)
    assert commission_accrue(now=T0 + dt.timedelta(minutes=1)) == 1
    assert _entries() == [("commission", 0, Decimal("2.50"), T0 + 7 * DAY)]

    before = T0 + 7 * DAY - dt.timedelta(seconds=1)
    assert _breakdown(affiliate, before) == [
        Balance("USD", Decimal("2.50"), Decimal("0"), Decimal("0"), Decimal("2.50"))
    ]
    assert _breakdown(affiliate, T0 + 7 * DAY) == [
        Balance("USD", Decimal("0"), Decimal("2.50"), Decimal("0"), Decimal("2.50"))
    ]


def test_no_hold_is_available_when_written(convert, affiliate):
    convert(payout=Decimal("1.00"), created_at=T0)
    commission_accrue(now=T0 + DAY)
    # Never before the entry existed: a late entry does not land in a closed past period.
    assert _entries() == [("commission", 0, Decimal("1.00"), T0 + DAY)]


def test_late_accrual_is_available_when_written_not_backdated(held, convert):
    convert(payout=Decimal("1.00"), created_at=T0)
    commission_accrue(now=T0 + 30 * DAY)
    assert _entries() == [("commission", 0, Decimal("1.00"), T0 + 30 * DAY)]


def test_reversed_during_the_hold_never_becomes_available(held, convert, affiliate):
    conversion = convert(payout=Decimal("2.50"), created_at=T0)
    commission_accrue(now=T0)
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.REJECTED)
    commission_accrue(now=T0 + 2 * DAY)

    # The reversal shares the commission's availability: they cancel before either is payable.
    assert _entries() == [
        ("commission", 0, Decimal("2.50"), T0 + 7 * DAY),
        ("reversal", 0, Decimal("-2.50"), T0 + 7 * DAY),
    ]
    zero = Decimal("0")
    for now in (T0 + 3 * DAY, T0 + 8 * DAY):
        assert _breakdown(affiliate, now) == [Balance("USD", zero, zero, zero, zero)]


def test_reversal_after_available_is_a_negative_entry_available_now(held, convert, affiliate):
    conversion = convert(payout=Decimal("2.50"), created_at=T0)
    convert(payout=Decimal("4.00"), created_at=T0 + 9 * DAY)
    commission_accrue(now=T0)
    Conversion.objects.filter(pk=conversion.pk).update(status=ConversionStatus.REVERSED)
    commission_accrue(now=T0 + 10 * DAY)

    assert _entries() == [
        ("commission", 0, Decimal("2.50"), T0 + 7 * DAY),
        ("commission", 0, Decimal("4.00"), T0 + 16 * DAY),
        ("reversal", 0, Decimal("-2.50"), T0 + 10 * DAY),
    ]
    assert _breakdown(affiliate, T0 + 10 * DAY) == [
        Balance("USD", Decimal("4.00"), Decimal("0.00"), Decimal("0"), Decimal("4.00"))
    ]


def test_breakdown_per_currency_with_jpy(held, convert, affiliate):
    convert(payout=Decimal("1006"), currency="JPY", created_at=T0)
    convert(payout=Decimal("1.10"), currency="EUR", created_at=T0 - 30 * DAY)
    commission_accrue(now=T0)
    assert _breakdown(affiliate, T0) == [
        Balance("EUR", Decimal("0"), Decimal("1.10"), Decimal("0"), Decimal("1.10")),
        Balance("JPY", Decimal("1006.00"), Decimal("0"), Decimal("0"), Decimal("1006.00")),
    ]
    assert all(
        type(v) is Decimal
        for b in _breakdown(affiliate, T0)
        for v in vars(b).values()
        if not isinstance(v, str)
    )


def test_breakdown_is_one_query(convert, affiliate, django_assert_num_queries):
    convert(created_at=T0)
    commission_accrue(now=T0)
    with django_assert_num_queries(1):
        _breakdown(affiliate, T0)
