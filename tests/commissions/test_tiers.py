"""Volume tiers: from the affiliate's Nth approved conversion on an offer in a calendar month (the
offer's time zone), conversions from that moment on earn the tier's payout."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import ProgrammingError, connection, transaction
from django.urls import reverse

from apps.commissions.models import LedgerEntry, TierReached
from apps.commissions.selectors import ledger_check
from apps.commissions.services import commission_accrue, commission_accrue_queued
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus, PayoutTier, PayoutType
from tests import factories
from tests.commissions.conftest import T0, at

pytestmark = pytest.mark.django_db
HOUR = dt.timedelta(hours=1)
LATER = T0 + dt.timedelta(days=400)


def _tier(offer, **kwargs) -> PayoutTier:
    fields = {"name": "Gold", "threshold": 3, "payout": Decimal("5.00")} | kwargs
    return PayoutTier.objects.create(offer=offer, **fields)


def _commissions() -> list[tuple]:
    return list(
        LedgerEntry.objects.filter(kind="commission")
        .order_by("conversion_id", "cycle")
        .values_list("conversion_id", "amount", "tier_reached__tier_id")
    )


def _reached() -> list[tuple]:
    return list(
        TierReached.objects.order_by("id").values_list(
            "affiliate_id", "offer_id", "tier_id", "month", "reached_at", "conversion_id"
        )
    )


def test_tier_is_reached_exactly_at_the_nth_approved_conversion(convert, offer, affiliate):
    gold = _tier(offer)
    c1, c2, c3, c4 = (convert(created_at=T0 + n * HOUR) for n in range(4))

    assert commission_accrue(now=T0 + 4 * HOUR) == 4

    assert _reached() == [
        (affiliate.pk, offer.pk, gold.pk, dt.date(2026, 3, 1), c3.created_at, c3.pk)
    ]
    # The first N - 1 at the goal's payout; the Nth itself and every later one at the tier's.
    assert _commissions() == [
        (c1.pk, Decimal("2.50"), None),
        (c2.pk, Decimal("2.50"), None),
        (c3.pk, Decimal("5.00"), gold.pk),
        (c4.pk, Decimal("5.00"), gold.pk),
    ]
    memo = LedgerEntry.objects.get(conversion=c3).memo
    assert memo == f"conversion {c3.pk}, tier #{gold.pk} Gold"
    assert LedgerEntry.objects.get(conversion=c1).memo == f"conversion {c1.pk}"
    assert commission_accrue(now=T0 + 5 * HOUR) == 0
    assert TierReached.objects.count() == 1
    assert ledger_check(settled_before=LATER) == []


def test_one_short_of_the_threshold_reaches_nothing(convert, offer):
    _tier(offer)
    convert(created_at=T0)
    convert(created_at=T0 + HOUR)
    convert(created_at=T0 + 2 * HOUR, status=ConversionStatus.PENDING)
    convert(created_at=T0 + 3 * HOUR, status=ConversionStatus.REJECTED)
    convert(created_at=T0 + 4 * HOUR, is_over_cap=True)
    commission_accrue()
    assert TierReached.objects.count() == 0
    assert [amount for _, amount, _ in _commissions()] == [Decimal("2.50")] * 2


def test_conversions_before_the_moment_keep_their_payout(convert, offer):
    """Approved late, created early: it counts towards the tier but was made before the tier was
    reached, so it is paid its own payout; and a tier once reached is not moved earlier."""
    gold = _tier(offer)
    early = convert(created_at=T0, status=ConversionStatus.PENDING)
    c2 = convert(created_at=T0 + HOUR)
    c3 = convert(created_at=T0 + 2 * HOUR)
    c4 = convert(created_at=T0 + 3 * HOUR)
    commission_accrue()
    assert TierReached.objects.get().reached_at == c4.created_at

    Conversion.objects.filter(pk=early.pk).update(status=ConversionStatus.APPROVED)
    commission_accrue()

    assert TierReached.objects.get().reached_at == c4.created_at
    assert _commissions() == [
        (early.pk, Decimal("2.50"), None),
        (c2.pk, Decimal("2.50"), None),
        (c3.pk, Decimal("2.50"), None),
        (c4.pk, Decimal("5.00"), gold.pk),
    ]


def test_a_later_rejection_does_not_take_the_tier_away(convert, offer):
    gold = _tier(offer)
    first, *_ = (convert(created_at=T0 + n * HOUR) for n in range(3))
    commission_accrue()
    Conversion.objects.filter(pk=first.pk).update(status=ConversionStatus.REJECTED)
    later = convert(created_at=T0 + 5 * HOUR)
    commission_accrue()
    assert LedgerEntry.objects.get(conversion=later).amount == Decimal("5.00")
    assert LedgerEntry.objects.get(conversion=later).tier_reached.tier == gold


def test_next_month_starts_from_zero(convert, offer):
    gold = _tier(offer, threshold=2)
    march = [convert(created_at=at(2026, 3, 30, 12) + n * HOUR) for n in range(3)]
    april = [convert(created_at=at(2026, 4, 1, 12) + n * HOUR) for n in range(3)]
    commission_accrue()

    assert [(r[3], r[5]) for r in _reached()] == [
        (dt.date(2026, 3, 1), march[1].pk),
        (dt.date(2026, 4, 1), april[1].pk),
    ]
    assert _commissions() == [
        (march[0].pk, Decimal("2.50"), None),
        (march[1].pk, Decimal("5.00"), gold.pk),
        (march[2].pk, Decimal("5.00"), gold.pk),
        (april[0].pk, Decimal("2.50"), None),
        (april[1].pk, Decimal("5.00"), gold.pk),
        (april[2].pk, Decimal("5.00"), gold.pk),
    ]


def test_months_are_counted_in_the_offers_time_zone(convert, offer):
    """2026-04-01 02:00 UTC is still March 31 in New York: it is March's third conversion."""
    offer.timezone = "America/New_York"
    offer.save()
    gold = _tier(offer, threshold=3)
    convert(created_at=at(2026, 3, 31, 12))
    convert(created_at=at(2026, 3, 31, 13))
    late_march = convert(created_at=at(2026, 4, 1, 2))
    april = convert(created_at=at(2026, 4, 1, 5))  # 01:00 in New York: April
    commission_accrue()
    assert [(r[3], r[5]) for r in _reached()] == [(dt.date(2026, 3, 1), late_march.pk)]
    assert _commissions()[2:] == [
        (late_march.pk, Decimal("5.00"), gold.pk),
        (april.pk, Decimal("2.50"), None),
    ]


def test_the_best_reached_tier_pays_and_a_lower_tier_never_cuts_a_payout(convert, offer):
    silver = _tier(offer, name="Silver", threshold=2, payout=Decimal("3.00"))
    gold = _tier(offer, name="Gold", threshold=3, payout=Decimal("4.00"))
    _tier(offer, name="Bronze", threshold=1, payout=Decimal("1.00"))  # below the goal's 2.50
    conversions = [convert(created_at=T0 + n * HOUR) for n in range(4)]
    rich = convert(created_at=T0 + 5 * HOUR, payout=Decimal("9.00"))
    commission_accrue()
    assert _commissions() == [
        (conversions[0].pk, Decimal("2.50"), None),
        (conversions[1].pk, Decimal("3.00"), silver.pk),
        (conversions[2].pk, Decimal("4.00"), gold.pk),
        (conversions[3].pk, Decimal("4.00"), gold.pk),
        (rich.pk, Decimal("9.00"), None),
    ]
    assert TierReached.objects.count() == 3


def test_private_tier_is_for_its_affiliate_only(convert, offer, affiliate):
    other = factories.AffiliateFactory()
    vip = _tier(offer, threshold=1, affiliate=affiliate, payout=Decimal("6.00"))
    mine = convert(created_at=T0)
    theirs = convert(created_at=T0, by=other)
    commission_accrue()
    assert _commissions() == [
        (mine.pk, Decimal("6.00"), vip.pk),
        (theirs.pk, Decimal("2.50"), None),
    ]
    assert [r[0] for r in _reached()] == [affiliate.pk]


def test_each_affiliate_counts_its_own_conversions(convert, offer, affiliate):
    other = factories.AffiliateFactory()
    _tier(offer, threshold=2)
    convert(created_at=T0)
    convert(created_at=T0 + HOUR, by=other)
    commission_accrue()
    assert TierReached.objects.count() == 0


def test_goal_tier_counts_and_pays_its_goal_only(convert, offer, goal):
    sale = factories.GoalFactory(offer=offer, code="sale", is_default=False, payout=Decimal("10"))
    tier = _tier(offer, goal=sale, threshold=2, payout=Decimal("12.00"))
    convert(created_at=T0)  # leads do not count
    lead_after = convert(created_at=T0 + 3 * HOUR)
    convert(on=sale, created_at=T0 + HOUR, payout=Decimal("10.00"))
    second_sale = convert(on=sale, created_at=T0 + 2 * HOUR, payout=Decimal("10.00"))
    commission_accrue()
    assert TierReached.objects.get().conversion_id == second_sale.pk
    assert LedgerEntry.objects.get(conversion=second_sale).tier_reached.tier == tier
    assert LedgerEntry.objects.get(conversion=lead_after).amount == Decimal("2.50")


def test_percent_tier_pays_a_share_of_the_sale_rounded_half_up(convert, offer):
    tier = _tier(offer, threshold=1, payout_type=PayoutType.PERCENT, payout=Decimal("12.5"))
    sale = convert(created_at=T0, sale_amount=Decimal("100.10"))  # 12.5125 -> 12.51
    halfway = convert(created_at=T0 + HOUR, sale_amount=Decimal("100.20"))  # 12.525 -> 12.53
    yen = convert(created_at=T0 + HOUR, currency="JPY", payout=Decimal("100"), sale_amount=1012)
    no_amount = convert(created_at=T0 + 2 * HOUR)  # a lead without a sale amount
    commission_accrue()
    assert _commissions() == [
        (sale.pk, Decimal("12.51"), tier.pk),
        (halfway.pk, Decimal("12.53"), tier.pk),
        (yen.pk, Decimal("127"), tier.pk),  # 126.5 yen -> 127
        (no_amount.pk, Decimal("2.50"), None),
    ]


def test_both_tier_adds_fixed_and_percent(convert, offer):
    _tier(
        offer,
        threshold=1,
        payout_type=PayoutType.BOTH,
        payout=Decimal("1.00"),
        payout_percent=Decimal("10"),
    )
    with_sale = convert(created_at=T0, sale_amount=Decimal("40.05"))  # 1 + 4.005 -> 5.01
    commission_accrue()
    assert LedgerEntry.objects.get(conversion=with_sale).amount == Decimal("5.01")


def test_zero_payout_conversions_count_but_are_not_paid(convert, offer):
    _tier(offer, threshold=2)
    convert(created_at=T0, payout=Decimal("0"))
    paid = convert(created_at=T0 + HOUR)
    commission_accrue()
    assert TierReached.objects.get().conversion_id == paid.pk
    assert _commissions() == [(paid.pk, Decimal("5.00"), TierReached.objects.get().tier_id)]


def test_queue_run_and_full_rescan_give_the_same_ledger(convert, offer, settings):
    settings.COMMISSIONS_ACCRUE_BATCH_SIZE = 2  # the Nth conversion in another batch
    _tier(offer, threshold=3)
    for n in range(7):
        convert(created_at=T0 + n * HOUR)
    assert commission_accrue_queued(now=T0).written == 7
    by_queue = _commissions()
    reached = _reached()
    assert commission_accrue(now=T0) == 0
    assert _commissions() == by_queue
    assert _reached() == reached
    assert [amount for _, amount, _ in by_queue] == [Decimal("2.50")] * 2 + [Decimal("5.00")] * 5


def test_tiers_reached_are_append_only(convert, offer):
    _tier(offer, threshold=1)
    convert(created_at=T0)
    commission_accrue()
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        TierReached.objects.update(reached_at=T0 - HOUR)
    with (
        pytest.raises(ProgrammingError, match=r"append-only \(DELETE refused\)"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM commissions_tierreached")
    assert TierReached.objects.count() == 1


def test_ledger_check_reports_a_tier_paid_before_it_was_reached(convert, offer):
    from tests.commissions.test_ledger_check import _raw

    _tier(offer, threshold=2)
    early = convert(created_at=T0)
    convert(created_at=T0 + HOUR)
    commission_accrue()
    assert ledger_check(settled_before=LATER) == []
    _raw(
        "UPDATE commissions_ledgerentry SET tier_reached_id = (SELECT id FROM"
        " commissions_tierreached) WHERE conversion_id = %s",
        early.pk,
    )
    assert [d.check for d in ledger_check(settled_before=LATER)] == ["tier_commission_not_matching"]


# --- admin and API ------------------------------------------------------------------------------


def _tier_formset(response):
    return next(
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is PayoutTier
    )


def test_staff_add_tiers_inline_advertisers_do_not_see_them(offer, goal, staff_user):
    from django.test import Client

    from apps.accounts.services import advertiser_user_create
    from tests.admin.conftest import admin_form_data

    staff = Client()
    staff.force_login(staff_user)
    url = reverse("admin:offers_offer_change", args=[offer.pk])
    response = staff.get(url)
    assert list(_tier_formset(response).empty_form.fields["goal"].queryset) == [goal]
    data = admin_form_data(response)
    data.update(
        {
            "payout_tiers-TOTAL_FORMS": "1",
            "payout_tiers-0-name": "Gold",
            "payout_tiers-0-threshold": "100",
            "payout_tiers-0-goal": str(goal.pk),
            "payout_tiers-0-payout_type": "fixed",
            "payout_tiers-0-payout": "3.75",
            "payout_tiers-0-payout_percent": "0",
        }
    )
    assert staff.post(url, data).status_code == 302
    assert list(PayoutTier.objects.values_list("name", "threshold", "goal_id", "payout")) == [
        ("Gold", 100, goal.pk, Decimal("3.7500"))
    ]

    advertiser_user = advertiser_user_create(
        username="adv", password="adv-password-123", advertiser_id=offer.advertiser_id
    )
    advertiser = Client()
    advertiser.force_login(advertiser_user)
    response = advertiser.get(url)
    assert response.status_code == 200
    assert not any(
        inline.formset.model is PayoutTier for inline in response.context["inline_admin_formsets"]
    )
    assert "Gold" not in response.content.decode()


def test_a_reached_tier_cannot_be_deleted_in_the_admin(convert, offer, staff_user):
    from django.test import Client

    from tests.admin.conftest import admin_form_data

    tier = _tier(offer, threshold=1)
    convert(created_at=T0)
    commission_accrue()
    staff = Client()
    staff.force_login(staff_user)
    url = reverse("admin:offers_offer_change", args=[offer.pk])
    data = admin_form_data(staff.get(url))
    data["payout_tiers-0-DELETE"] = "on"
    response = staff.post(url, data)
    assert response.status_code == 200
    assert "would require deleting the following protected related objects" in str(
        _tier_formset(response).non_form_errors()
    )
    assert PayoutTier.objects.filter(pk=tier.pk).exists()


def test_tiers_reached_admin_lists_them_read_only(convert, offer, staff_user):
    from django.test import Client

    _tier(offer, threshold=1)
    convert(created_at=T0)
    commission_accrue()
    staff = Client()
    staff.force_login(staff_user)
    response = staff.get(reverse("admin:commissions_tierreached_changelist"))
    assert response.status_code == 200
    assert "2026-03" in response.content.decode()
    assert staff.get(reverse("admin:commissions_tierreached_add")).status_code == 403


def test_affiliate_api_lists_its_own_tiers_only(convert, offer, affiliate, affiliate_client):
    gold = _tier(offer, threshold=1)
    mine = convert(created_at=T0)
    convert(created_at=at(2026, 4, 2))
    convert(created_at=T0, by=factories.AffiliateFactory())  # someone else's tier
    commission_accrue()
    assert TierReached.objects.count() == 3

    body = affiliate_client.get("/api/v1/affiliate/tiers/").json()
    assert body["count"] == 2
    assert [row["month"] for row in body["results"]] == ["2026-04", "2026-03"]
    march = affiliate_client.get("/api/v1/affiliate/tiers/?month=2026-03").json()["results"]
    assert march == [
        {
            "id": TierReached.objects.get(conversion=mine).pk,
            "offer_id": offer.pk,
            "offer_name": offer.name,
            "month": "2026-03",
            "reached_at": "2026-03-02T12:00:00Z",
            "conversion_id": mine.pk,
            "tier": {
                "id": gold.pk,
                "name": "Gold",
                "threshold": 1,
                "goal_id": None,
                "payout_type": "fixed",
                "payout": "5.0000",
                "payout_percent": "0.0000",
            },
        }
    ]
    bad = affiliate_client.get("/api/v1/affiliate/tiers/?month=March")
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_filter")


def test_tiers_api_is_for_affiliates(advertiser_client, staff_client):
    assert advertiser_client.get("/api/v1/affiliate/tiers/").status_code == 403
    assert staff_client.get("/api/v1/affiliate/tiers/").status_code == 403
