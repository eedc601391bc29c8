"""apps.conversions.status: the allowed moves, each recorded in the status history, and what a
reversal does to the commission ledger."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.commissions.models import AccrualQueue, LedgerEntry
from apps.commissions.services import balance_for_affiliate, commission_accrue
from apps.conversions import services
from apps.conversions.models import Conversion, ConversionStatusChange, StatusChangeSource
from apps.conversions.status import (
    StatusChangeRefused,
    conversion_reverse,
    conversion_scrub,
    conversion_status_change,
    conversions_status_change,
    status_move_allowed,
)
from apps.offers.models import ConversionStatus
from tests import factories

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

PENDING, APPROVED, REJECTED, REVERSED = (
    ConversionStatus.PENDING,
    ConversionStatus.APPROVED,
    ConversionStatus.REJECTED,
    ConversionStatus.REVERSED,
)
STATUSES = [PENDING, APPROVED, REJECTED, REVERSED]
SOURCES = list(StatusChangeSource)
STAFF_SOURCES = {
    StatusChangeSource.ADMIN,
    StatusChangeSource.API,
    StatusChangeSource.RECONCILIATION,
}
# Every (old, new) move there is; rejected -> approved only for staff sources (below).
ALLOWED = {(PENDING, APPROVED), (PENDING, REJECTED), (APPROVED, REVERSED), (REJECTED, APPROVED)}


def _expected_allowed(old: str, new: str, source: str) -> bool:
    if (old, new) not in ALLOWED:
        return False
    return old != REJECTED or source in STAFF_SOURCES


@pytest.fixture
def make(goal, affiliate):
    """A conversion of `affiliate` on the `goal` fixture's offer, made at T0."""

    def _make(status: str = APPROVED, **kwargs) -> Conversion:
        click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate)
        return factories.ConversionFactory(
            click=click, goal=goal, status=status, created_at=T0, **kwargs
        )

    return _make


@pytest.fixture
def staff_user(db):
    return factories.UserFactory(is_staff=True)


def _history(conversion: Conversion) -> list[tuple]:
    return list(
        ConversionStatusChange.objects.filter(conversion=conversion)
        .order_by("id")
        .values_list("old_status", "new_status", "source", "user_id", "reason", "created_at")
    )


# --- the rule itself, every combination -----------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "source"),
    list(itertools.product(STATUSES, STATUSES, SOURCES)),
    ids=str,
)
def test_status_move_allowed_table(old, new, source):
    assert status_move_allowed(old=old, new=new, source=source) is _expected_allowed(
        old, new, source
    )


def test_the_table_allows_exactly_these_moves():
    allowed = {
        (old, new, source)
        for old, new, source in itertools.product(STATUSES, STATUSES, SOURCES)
        if status_move_allowed(old=old, new=new, source=source)
    }
    expected = (
        {(PENDING, APPROVED, s) for s in SOURCES}
        | {(PENDING, REJECTED, s) for s in SOURCES}
        | {(APPROVED, REVERSED, s) for s in SOURCES}
        | {(REJECTED, APPROVED, s) for s in STAFF_SOURCES}
    )
    assert allowed == expected
    assert len(allowed) == 3 * len(SOURCES) + 3


# --- one conversion: allowed moves are recorded, refused ones change nothing ----------------------


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_allowed_move_records_one_history_row(make, staff_user, old, new):
    conversion = make(status=old)
    now = T0 + timedelta(hours=5)

    moved, changed = conversion_status_change(
        conversion_id=conversion.pk,
        new_status=new,
        source=StatusChangeSource.API,
        now=now,
        user_id=staff_user.pk,
        reason="checked the CRM",
    )

    assert changed is True
    assert (moved.pk, moved.status, moved.status_changed_at) == (conversion.pk, new, now)
    conversion.refresh_from_db()
    assert (conversion.status, conversion.status_changed_at) == (new, now)
    assert _history(conversion) == [
        (old, new, "api", staff_user.pk, "checked the CRM", now),
    ]


REFUSED = [
    (old, new)
    for old, new in itertools.product(STATUSES, STATUSES)
    if old != new and (old, new) not in ALLOWED
]


def test_refused_moves_are_the_other_eight():
    assert REFUSED == [
        (PENDING, REVERSED),
        (APPROVED, PENDING),
        (APPROVED, REJECTED),
        (REJECTED, PENDING),
        (REJECTED, REVERSED),
        (REVERSED, PENDING),
        (REVERSED, APPROVED),
        (REVERSED, REJECTED),
    ]


@pytest.mark.parametrize(("old", "new"), REFUSED)
def test_refused_move_raises_409_and_changes_nothing(make, staff_user, old, new):
    conversion = make(status=old)

    with pytest.raises(StatusChangeRefused) as refused:
        conversion_status_change(
            conversion_id=conversion.pk,
            new_status=new,
            source=StatusChangeSource.ADMIN,
            now=T0,
            user_id=staff_user.pk,
            reason="no",
        )

    assert (refused.value.code, refused.value.http_status) == ("invalid_transition", 409)
    assert refused.value.message == f"a {old} conversion cannot become {new}"
    conversion.refresh_from_db()
    assert (conversion.status, conversion.status_changed_at) == (old, None)
    assert ConversionStatusChange.objects.count() == 0


@pytest.mark.parametrize("status", STATUSES)
def test_asking_for_the_status_it_has_is_a_no_op(make, status):
    conversion = make(status=status)
    moved, changed = conversion_status_change(
        conversion_id=conversion.pk,
        new_status=status,
        source=StatusChangeSource.POSTBACK,
        now=T0,
    )
    assert (moved.status, changed) == (status, False)
    conversion.refresh_from_db()
    assert conversion.status_changed_at is None
    assert ConversionStatusChange.objects.count() == 0


@pytest.mark.parametrize("source", sorted(set(SOURCES) - STAFF_SOURCES))
def test_rejected_to_approved_is_refused_for_non_staff_sources(make, source):
    conversion = make(status=REJECTED)
    with pytest.raises(StatusChangeRefused) as refused:
        conversion_status_change(
            conversion_id=conversion.pk, new_status=APPROVED, source=source, now=T0
        )
    assert refused.value.code == "invalid_transition"
    conversion.refresh_from_db()
    assert conversion.status == REJECTED
    assert ConversionStatusChange.objects.count() == 0


@pytest.mark.parametrize("source", sorted(STAFF_SOURCES))
def test_rejected_to_approved_is_allowed_for_staff_sources(make, source):
    conversion = make(status=REJECTED)
    _, changed = conversion_status_change(
        conversion_id=conversion.pk, new_status=APPROVED, source=source, now=T0
    )
    assert changed is True
    assert _history(conversion) == [(REJECTED, APPROVED, source, None, "", T0)]


def test_history_keeps_each_move_in_order_with_who_when_and_why(make, staff_user):
    conversion = make(status=PENDING)
    t1, t2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    t3 = T0 + timedelta(days=3)

    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=REJECTED,
        source=StatusChangeSource.QUALITY_REVIEW,
        now=t1,
        user_id=staff_user.pk,
        reason="bot traffic",
    )
    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=APPROVED,
        source=StatusChangeSource.ADMIN,
        now=t2,
        user_id=staff_user.pk,
        reason="false positive",
    )
    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=REVERSED,
        source=StatusChangeSource.RECONCILIATION,
        now=t3,
        reason="x" * 300,
    )

    assert _history(conversion) == [
        (PENDING, REJECTED, "quality_review", staff_user.pk, "bot traffic", t1),
        (REJECTED, APPROVED, "admin", staff_user.pk, "false positive", t2),
        (APPROVED, REVERSED, "reconciliation", None, "x" * 255, t3),
    ]
    conversion.refresh_from_db()
    assert (conversion.status, conversion.status_changed_at) == (REVERSED, t3)


def test_a_deleted_user_leaves_the_history_row(make, staff_user):
    conversion = make(status=PENDING)
    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=APPROVED,
        source=StatusChangeSource.ADMIN,
        now=T0,
        user_id=staff_user.pk,
    )
    staff_user.delete()
    assert _history(conversion) == [(PENDING, APPROVED, "admin", None, "", T0)]


def test_unknown_conversion_is_not_found():
    with pytest.raises(StatusChangeRefused) as refused:
        conversion_status_change(
            conversion_id=987654321, new_status=APPROVED, source=StatusChangeSource.API, now=T0
        )
    assert (refused.value.code, refused.value.http_status) == ("conversion_not_found", 404)


def test_scoped_to_another_advertiser_is_not_found(make):
    conversion = make(status=PENDING)
    other = factories.AdvertiserFactory()
    with pytest.raises(StatusChangeRefused) as refused:
        conversion_status_change(
            conversion_id=conversion.pk,
            new_status=APPROVED,
            source=StatusChangeSource.API,
            now=T0,
            advertiser_id=other.pk,
        )
    assert (refused.value.code, refused.value.http_status) == ("conversion_not_found", 404)
    conversion.refresh_from_db()
    assert conversion.status == PENDING

    _, changed = conversion_status_change(
        conversion_id=conversion.pk,
        new_status=APPROVED,
        source=StatusChangeSource.API,
        now=T0,
        advertiser_id=conversion.offer.advertiser_id,
    )
    assert changed is True


# --- bulk -----------------------------------------------------------------------------------------


def test_bulk_move_skips_what_cannot_move(make, staff_user):
    pending_1, pending_2 = make(status=PENDING), make(status=PENDING)
    approved, rejected, reversed_ = (
        make(status=APPROVED),
        make(status=REJECTED),
        make(status=REVERSED),
    )
    ids = [c.pk for c in (pending_1, pending_2, approved, rejected, reversed_)]

    moved = conversions_status_change(
        conversion_ids=ids,
        new_status=REJECTED,
        source=StatusChangeSource.ADMIN,
        now=T0,
        user_id=staff_user.pk,
        reason="bulk",
    )

    assert moved == 2
    assert dict(Conversion.objects.filter(pk__in=ids).values_list("pk", "status")) == {
        pending_1.pk: REJECTED,
        pending_2.pk: REJECTED,
        approved.pk: APPROVED,  # approved -> rejected is not a move
        rejected.pk: REJECTED,  # already there: no row
        reversed_.pk: REVERSED,
    }
    assert list(
        ConversionStatusChange.objects.order_by("id").values_list(
            "conversion_id", "old_status", "new_status", "source", "user_id", "reason"
        )
    ) == [
        (pending_1.pk, PENDING, REJECTED, "admin", staff_user.pk, "bulk"),
        (pending_2.pk, PENDING, REJECTED, "admin", staff_user.pk, "bulk"),
    ]


def test_bulk_approve_undoes_rejections_only_for_staff(make):
    pending, rejected = make(status=PENDING), make(status=REJECTED)
    ids = [pending.pk, rejected.pk]

    moved = conversions_status_change(
        conversion_ids=ids,
        new_status=APPROVED,
        source=StatusChangeSource.QUALITY_REVIEW,
        now=T0,
    )
    assert moved == 1
    rejected.refresh_from_db()
    assert rejected.status == REJECTED

    moved = conversions_status_change(
        conversion_ids=ids, new_status=APPROVED, source=StatusChangeSource.ADMIN, now=T0
    )
    assert moved == 1
    assert set(Conversion.objects.filter(pk__in=ids).values_list("status", flat=True)) == {APPROVED}
    assert list(
        ConversionStatusChange.objects.order_by("id").values_list(
            "conversion_id", "old_status", "source"
        )
    ) == [(pending.pk, PENDING, "quality_review"), (rejected.pk, REJECTED, "admin")]


def test_bulk_only_from_limits_the_starting_statuses(make):
    pending, rejected = make(status=PENDING), make(status=REJECTED)
    moved = conversions_status_change(
        conversion_ids=[pending.pk, rejected.pk],
        new_status=APPROVED,
        source=StatusChangeSource.ADMIN,
        now=T0,
        only_from=[PENDING],
    )
    assert moved == 1
    rejected.refresh_from_db()
    assert rejected.status == REJECTED
    assert ConversionStatusChange.objects.get().conversion_id == pending.pk


def test_bulk_with_nothing_to_do(make):
    assert (
        conversions_status_change(
            conversion_ids=[], new_status=APPROVED, source=StatusChangeSource.ADMIN, now=T0
        )
        == 0
    )
    reversed_ = make(status=REVERSED)
    assert (
        conversions_status_change(
            conversion_ids=[reversed_.pk, 987654321],
            new_status=APPROVED,
            source=StatusChangeSource.ADMIN,
            now=T0,
        )
        == 0
    )
    assert ConversionStatusChange.objects.count() == 0


# --- reverse --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        (PENDING, REJECTED, True),
        (APPROVED, REVERSED, True),
        (REJECTED, REJECTED, False),
        (REVERSED, REVERSED, False),
    ],
)
def test_reverse_by_status(make, old, new, changed):
    conversion = make(status=old)
    result, did = conversion_reverse(
        conversion_id=conversion.pk,
        source=StatusChangeSource.REVERSAL_POSTBACK,
        now=T0,
        reason="chargeback",
    )
    assert (result.status, did) == (new, changed)
    expected = [(old, new, "reversal_postback", None, "chargeback", T0)] if changed else []
    assert _history(conversion) == expected


def test_reverse_twice_writes_one_row(make):
    conversion = make(status=APPROVED)
    first = conversion_reverse(conversion_id=conversion.pk, source=StatusChangeSource.API, now=T0)
    second = conversion_reverse(
        conversion_id=conversion.pk, source=StatusChangeSource.API, now=T0 + timedelta(hours=1)
    )
    assert (first[1], second[1]) == (True, False)
    assert _history(conversion) == [(APPROVED, REVERSED, "api", None, "", T0)]


def test_reverse_scoped_to_another_advertiser_is_not_found(make):
    conversion = make(status=APPROVED)
    with pytest.raises(StatusChangeRefused) as refused:
        conversion_reverse(
            conversion_id=conversion.pk,
            source=StatusChangeSource.API,
            now=T0,
            advertiser_id=factories.AdvertiserFactory().pk,
        )
    assert (refused.value.code, refused.value.http_status) == ("conversion_not_found", 404)
    conversion.refresh_from_db()
    assert conversion.status == APPROVED


# --- scrub ----------------------------------------------------------------------------------------


def test_scrub_within_the_window(make, staff_user):
    conversion = make(status=APPROVED)
    advertiser_id = conversion.offer.advertiser_id
    now = T0 + timedelta(days=30)  # the default window's last instant

    result, changed = conversion_scrub(
        conversion_id=conversion.pk,
        advertiser_id=advertiser_id,
        now=now,
        user_id=staff_user.pk,
        reason="fraud",
    )
    assert (result.status, changed) == (REVERSED, True)
    assert _history(conversion) == [(APPROVED, REVERSED, "scrub", staff_user.pk, "fraud", now)]


def test_scrub_after_the_window(make):
    conversion = make(status=PENDING)
    with pytest.raises(StatusChangeRefused) as refused:
        conversion_scrub(
            conversion_id=conversion.pk,
            advertiser_id=conversion.offer.advertiser_id,
            now=T0 + timedelta(days=30, microseconds=1),
            user_id=None,
            reason="late",
        )
    assert (refused.value.code, refused.value.http_status) == ("scrub_window_closed", 409)
    assert refused.value.message == "conversions can be scrubbed for 30 days after they happen"
    conversion.refresh_from_db()
    assert conversion.status == PENDING
    assert ConversionStatusChange.objects.count() == 0


def test_scrub_window_zero_refuses_a_second_later(make):
    conversion = make(status=APPROVED)
    advertiser = conversion.offer.advertiser
    advertiser.scrub_window_days = 0
    advertiser.save()
    with pytest.raises(StatusChangeRefused) as refused:
        conversion_scrub(
            conversion_id=conversion.pk,
            advertiser_id=advertiser.pk,
            now=T0 + timedelta(seconds=1),
            user_id=None,
            reason="",
        )
    assert refused.value.code == "scrub_window_closed"


def test_scrub_window_zero_means_never(make):
    conversion = make(status=APPROVED)
    advertiser = conversion.offer.advertiser
    advertiser.scrub_window_days = 0
    advertiser.save()
    with pytest.raises(StatusChangeRefused) as refused:
        conversion_scrub(
            conversion_id=conversion.pk,
            advertiser_id=advertiser.pk,
            now=T0,
            user_id=None,
            reason="",
        )
    assert refused.value.code == "scrub_window_closed"


def test_scrub_of_another_advertisers_conversion_is_not_found(make):
    conversion = make(status=APPROVED)
    with pytest.raises(StatusChangeRefused) as refused:
        conversion_scrub(
            conversion_id=conversion.pk,
            advertiser_id=factories.AdvertiserFactory().pk,
            now=T0,
            user_id=None,
            reason="",
        )
    assert (refused.value.code, refused.value.http_status) == ("conversion_not_found", 404)


# --- the ledger follows ---------------------------------------------------------------------------


def _ledger() -> list[tuple]:
    return list(
        LedgerEntry.objects.order_by("id").values_list(
            "conversion_id", "kind", "amount", "currency", "cycle"
        )
    )


def test_reversal_after_accrual_writes_a_reversal_entry_and_the_balance_is_zero(make, affiliate):
    conversion = make(status=APPROVED, payout=Decimal("2.50"))
    assert commission_accrue() == 1
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("2.50")}

    _, changed = conversion_reverse(
        conversion_id=conversion.pk,
        source=StatusChangeSource.REVERSAL_POSTBACK,
        now=T0 + timedelta(days=1),
        reason="chargeback",
    )
    assert changed is True
    assert commission_accrue() == 1
    assert commission_accrue() == 0  # idempotent

    assert _ledger() == [
        (conversion.pk, "commission", Decimal("2.50"), "USD", 0),
        (conversion.pk, "reversal", Decimal("-2.50"), "USD", 0),
    ]
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("0.00")}


def test_approve_then_reverse_nets_to_zero(make, affiliate):
    conversion = make(status=PENDING, payout=Decimal("7.25"))
    assert commission_accrue() == 0

    conversion_status_change(
        conversion_id=conversion.pk, new_status=APPROVED, source=StatusChangeSource.API, now=T0
    )
    assert commission_accrue() == 1
    conversion_reverse(conversion_id=conversion.pk, source=StatusChangeSource.API, now=T0)
    assert commission_accrue() == 1

    assert _ledger() == [
        (conversion.pk, "commission", Decimal("7.25"), "USD", 0),
        (conversion.pk, "reversal", Decimal("-7.25"), "USD", 0),
    ]
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("0.00")}
    assert [row[:3] for row in _history(conversion)] == [
        (PENDING, APPROVED, "api"),
        (APPROVED, REVERSED, "api"),
    ]


def test_rejected_pending_conversion_never_touches_the_ledger(make, affiliate):
    conversion = make(status=PENDING)
    conversion_reverse(conversion_id=conversion.pk, source=StatusChangeSource.API, now=T0)
    assert commission_accrue() == 0
    assert LedgerEntry.objects.count() == 0
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {}


def test_each_move_is_queued_for_the_ledger(make):
    """A move reaches the accrual queue (a trigger, in the move's transaction); a no-op does not."""
    conversion = make(status=PENDING)
    queued = AccrualQueue.objects.filter(conversion_id=conversion.pk)
    before = queued.count()
    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=APPROVED,
        source=StatusChangeSource.API,
        now=T0,
    )
    assert queued.count() == before + 1
    conversion_status_change(
        conversion_id=conversion.pk,
        new_status=APPROVED,
        source=StatusChangeSource.API,
        now=T0,
    )
    assert queued.count() == before + 1  # a no-op tells no one


# --- a repeat postback may move a pending conversion ----------------------------------------------


def _postback(click, **extra: str) -> tuple[Conversion, bool]:
    params = services.postback_params_parse(
        {
            "click_id": click.click_id,
            "token": factories.ADVERTISER_TOKEN,
            "order_id": "O-1",
            **extra,
        }
    )
    return services.conversion_record(params=params, request_ip="127.0.0.1", now=timezone.now())


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("approved", "approved"),
        ("1", "approved"),
        ("rejected", "rejected"),
        ("declined", "rejected"),
    ],
)
def test_repeat_postback_moves_a_pending_conversion(click, sent, expected):
    first, _ = _postback(click, status="pending")
    again, created = _postback(click, status=sent)

    assert (created, again.pk, again.status) == (False, first.pk, expected)
    first.refresh_from_db()
    assert first.status == expected
    change = ConversionStatusChange.objects.get()
    assert (change.old_status, change.new_status, change.source, change.user_id, change.reason) == (
        "pending",
        expected,
        "postback",
        None,
        "status sent again by the advertiser's postback",
    )
    assert first.status_changed_at == change.created_at


def test_repeat_postback_racing_a_reversal_is_refused_not_a_500(click):
    """The retry read the conversion as pending; staff rejected it before the retry's change
    took its lock. The retry gets a 4xx reason, the staff decision stands."""
    first, _ = _postback(click, status="pending")
    stale = Conversion.objects.get(pk=first.pk)
    Conversion.objects.filter(pk=first.pk).update(status=ConversionStatus.REJECTED)

    with pytest.raises(services.PostbackRejected) as refused:
        services._repeat_postback(
            stale, sale_amount=None, raw_status="approved", now=timezone.now()
        )
    assert 400 <= refused.value.http_status < 500
    first.refresh_from_db()
    assert first.status == ConversionStatus.REJECTED


@pytest.mark.parametrize("sent", ["", "pending", "hold"])
def test_repeat_postback_without_a_new_status_leaves_pending(click, sent):
    _postback(click, status="pending")
    again, created = _postback(click, status=sent)
    assert (created, again.status) == (False, "pending")
    assert ConversionStatusChange.objects.count() == 0


def test_repeat_postback_with_an_invalid_status_is_refused_and_nothing_moves(click):
    first, _ = _postback(click, status="pending")
    with pytest.raises(services.PostbackRejected) as rejected:
        _postback(click, status="paid")
    assert (rejected.value.code, rejected.value.http_status) == ("invalid_status", 400)
    first.refresh_from_db()
    assert first.status == "pending"
    assert ConversionStatusChange.objects.count() == 0


def test_repeat_postback_cannot_approve_what_quality_holds(click):
    click.is_bot = True  # score 40: held as pending
    click.save()
    first, _ = _postback(click)
    assert (first.status, first.quality_score) == ("pending", 40)

    again, created = _postback(click, status="approved")
    assert (created, again.status) == (False, "pending")
    first.refresh_from_db()
    assert first.status == "pending"
    assert ConversionStatusChange.objects.count() == 0

    # The advertiser may still reject what is held.
    rejected, _ = _postback(click, status="rejected")
    assert rejected.status == "rejected"
    assert ConversionStatusChange.objects.get().source == "postback"


@pytest.mark.parametrize(
    ("start", "sent"),
    [
        ("approved", "rejected"),
        ("approved", "pending"),
        ("rejected", "approved"),  # only staff undo a rejection
        ("rejected", "pending"),
    ],
)
def test_repeat_postback_never_moves_a_settled_conversion(click, start, sent):
    first, _ = _postback(click, status=start)
    again, created = _postback(click, status=sent)
    assert (created, again.pk, again.status) == (False, first.pk, start)
    first.refresh_from_db()
    assert first.status == start
    assert ConversionStatusChange.objects.count() == 0


def test_repeat_postback_with_another_amount_is_a_conflict_and_nothing_moves(click):
    first, _ = _postback(click, status="pending", amount="10.00")
    with pytest.raises(services.PostbackRejected) as rejected:
        _postback(click, status="approved", amount="11.00")
    assert (rejected.value.code, rejected.value.http_status) == ("order_conflict", 409)
    first.refresh_from_db()
    assert (first.status, first.sale_amount) == ("pending", Decimal("10.0000"))
    assert ConversionStatusChange.objects.count() == 0

    again, _ = _postback(click, status="approved", amount="10")  # same amount: the move goes on
    assert again.status == "approved"
