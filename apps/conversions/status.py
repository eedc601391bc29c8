"""Conversion status changes: the allowed moves, each recorded with who, when and why, each
followed by its side effects (the affiliate's postbacks, the commission ledger).

    pending  -> approved | rejected
    approved -> reversed            (money taken back through the ledger, never an edit)
    rejected -> approved            (staff only: a wrong rejection put right)
    reversed -> (final)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import transaction

from apps.common.errors import DomainError
from apps.conversions import side_effects
from apps.conversions.models import Conversion, ConversionStatusChange, StatusChangeSource
from apps.offers.models import ConversionStatus

_MOVES: dict[str, frozenset[str]] = {
    ConversionStatus.PENDING: frozenset({ConversionStatus.APPROVED, ConversionStatus.REJECTED}),
    ConversionStatus.APPROVED: frozenset({ConversionStatus.REVERSED}),
    ConversionStatus.REJECTED: frozenset({ConversionStatus.APPROVED}),
    ConversionStatus.REVERSED: frozenset(),
}
# Only network staff (and their reconciliation uploads) may undo a rejection.
_STAFF_SOURCES = frozenset(
    {StatusChangeSource.ADMIN, StatusChangeSource.API, StatusChangeSource.RECONCILIATION}
)


class StatusChangeRefused(DomainError):
    pass


def status_move_allowed(*, old: str, new: str, source: StatusChangeSource) -> bool:
    if new not in _MOVES.get(old, frozenset()):
        return False
    return not (old == ConversionStatus.REJECTED and source not in _STAFF_SOURCES)


def status_apply_locked(
    conversion: Conversion,
    *,
    new_status: ConversionStatus,
    source: StatusChangeSource,
    user_id: int | None,
    reason: str,
    now: datetime,
) -> bool:
    """Apply one move to a conversion the caller locked (select_for_update) in its transaction.
    False: it already had that status."""
    if conversion.status == new_status:
        return False
    if not status_move_allowed(old=conversion.status, new=new_status, source=source):
        raise StatusChangeRefused(
            "invalid_transition",
            http_status=409,
            message=f"a {conversion.status} conversion cannot become {new_status}",
        )
    ConversionStatusChange.objects.create(
        conversion=conversion,
        old_status=conversion.status,
        new_status=new_status,
        source=source,
        user_id=user_id,
        reason=reason[:255],
        created_at=now,
    )
    conversion.status = new_status
    conversion.status_changed_at = now
    conversion.save(update_fields=["status", "status_changed_at", "updated_at"])
    side_effects.conversion_changed(conversion)
    return True


def _locked(conversion_id: int, advertiser_id: int | None) -> Conversion:
    """The conversion, locked for this transaction; advertiser_id scopes the lookup to that
    advertiser's conversions (another's is "not found", not "forbidden")."""
    query = Conversion.objects.select_for_update().filter(pk=conversion_id)
    if advertiser_id is not None:
        query = query.filter(offer__advertiser_id=advertiser_id)
    conversion = query.first()
    if conversion is None:
        raise StatusChangeRefused("conversion_not_found", http_status=404)
    return conversion


def conversion_status_change(
    *,
    conversion_id: int,
    new_status: ConversionStatus,
    source: StatusChangeSource,
    now: datetime,
    user_id: int | None = None,
    reason: str = "",
    advertiser_id: int | None = None,
) -> tuple[Conversion, bool]:
    """Move one conversion; returns (conversion, changed). Asking for the status it already has is
    a no-op (a retried call answers the same). advertiser_id scopes the lookup to that
    advertiser's conversions (another's is "not found", not "forbidden")."""
    with transaction.atomic():
        conversion = _locked(conversion_id, advertiser_id)
        changed = status_apply_locked(
            conversion,
            new_status=new_status,
            source=source,
            user_id=user_id,
            reason=reason,
            now=now,
        )
    return conversion, changed


def conversions_status_change(
    *,
    conversion_ids: Iterable[int],
    new_status: ConversionStatus,
    source: StatusChangeSource,
    now: datetime,
    user_id: int | None = None,
    reason: str = "",
    only_from: Iterable[ConversionStatus] | None = None,
) -> int:
    """Bulk move (admin actions, review queue); conversions that cannot make the move are left
    as they are. Returns how many moved."""
    moved = 0
    with transaction.atomic():
        query = Conversion.objects.select_for_update().filter(pk__in=list(conversion_ids))
        if only_from is not None:
            query = query.filter(status__in=list(only_from))
        for conversion in query.order_by("pk"):
            if not status_move_allowed(old=conversion.status, new=new_status, source=source):
                continue
            moved += status_apply_locked(
                conversion,
                new_status=new_status,
                source=source,
                user_id=user_id,
                reason=reason,
                now=now,
            )
    return moved


def reversal_status_for(status: str) -> ConversionStatus:
    """What "take this conversion back" means for its status: a pending one is rejected, an
    approved one reversed (its commission comes back through the ledger)."""
    if status == ConversionStatus.PENDING:
        return ConversionStatus.REJECTED
    return ConversionStatus.REVERSED


def conversion_reverse(
    *,
    conversion_id: int,
    source: StatusChangeSource,
    now: datetime,
    user_id: int | None = None,
    reason: str = "",
    advertiser_id: int | None = None,
) -> tuple[Conversion, bool]:
    """Reverse an approved conversion or reject a pending one. Idempotent: reversing a reversed
    (or a rejected) conversion again changes nothing."""
    with transaction.atomic():
        conversion = _locked(conversion_id, advertiser_id)
        if conversion.status in (ConversionStatus.REJECTED, ConversionStatus.REVERSED):
            return conversion, False
        changed = status_apply_locked(
            conversion,
            new_status=reversal_status_for(conversion.status),
            source=source,
            user_id=user_id,
            reason=reason,
            now=now,
        )
    return conversion, changed


def conversion_scrub(
    *, conversion_id: int, advertiser_id: int, now: datetime, user_id: int | None, reason: str
) -> tuple[Conversion, bool]:
    """The advertiser rejects one of their own conversions, within their scrub window."""
    conversion = (
        Conversion.objects.select_related("offer__advertiser")
        .filter(pk=conversion_id, offer__advertiser_id=advertiser_id)
        .first()
    )
    if conversion is None:
        raise StatusChangeRefused("conversion_not_found", http_status=404)
    window_days = conversion.offer.advertiser.scrub_window_days
    if window_days == 0 or now - conversion.created_at > timedelta(days=window_days):
        raise StatusChangeRefused(
            "scrub_window_closed",
            http_status=409,
            message=f"conversions can be scrubbed for {window_days} days after they happen",
        )
    return conversion_reverse(
        conversion_id=conversion_id,
        source=StatusChangeSource.SCRUB,
        now=now,
        user_id=user_id,
        reason=reason,
        advertiser_id=advertiser_id,
    )
