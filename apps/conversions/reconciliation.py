"""Advertiser reconciliation: the advertiser's own export (a CSV of order or click ids, amounts and
statuses) compared with the conversions we recorded for it, and, on request, the advertiser's
statuses applied to ours.

What the report holds, one row per difference (matches are only counted):
    missing_in_network     in the advertiser's file, not found among its conversions here
    missing_in_advertiser  ours, in the period, not in the file
    amount_mismatch        found on both sides, the sale amounts differ (report only: never changed)
    status_mismatch        found on both sides, the statuses differ (what "apply" acts on)
    row_error              a line of the file we could not read (bad amount, unknown status, no id)

A file row is looked up by its ids among *all* of the advertiser's conversions, not only those in
the period: a conversion recorded just before midnight on the day before the period is still the
advertiser's order, not "missing". The period only bounds `missing_in_advertiser`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import QuerySet

from apps.common.errors import DomainError
from apps.common.money import Currency, InvalidAmount, amount_parse, money_round
from apps.conversions.models import Conversion, ReconciliationRun, StatusChangeSource
from apps.conversions.params import MAX_ID_LENGTH, STATUS_ALIASES
from apps.conversions.status import (
    StatusChangeRefused,
    conversion_reverse,
    conversion_status_change,
    reversal_status_for,
    status_move_allowed,
)
from apps.offers.models import ConversionStatus, Offer

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 100_000
# Rows kept in the report for the categories that can grow without bound (our whole period, a
# file full of garbage); their counts and sums in the summary are always complete.
MAX_REPORTED_PER_CATEGORY = 5_000
# Ids are looked up in batches of this many.
_LOOKUP_BATCH = 2_000

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "order_id": ("order_id", "adv_sub", "order", "transaction_order_id"),
    "click_id": ("click_id", "transaction_id", "clickid"),
    "amount": ("amount", "sale_amount", "sum", "revenue"),
    "status": ("status", "conv_status"),
    "currency": ("currency",),
}
_COLUMN_FOR_HEADER = {alias: column for column, names in COLUMN_ALIASES.items() for alias in names}
_DELIMITERS = (",", ";", "\t", "|")


class ReconciliationCategory(models.TextChoices):
    # In the order the report lists them: what "apply" acts on first.
    MATCHED = "matched", "Matched"
    STATUS_MISMATCH = "status_mismatch", "Status mismatch"
    AMOUNT_MISMATCH = "amount_mismatch", "Amount mismatch"
    MISSING_IN_NETWORK = "missing_in_network", "Missing in network"
    MISSING_IN_ADVERTISER = "missing_in_advertiser", "Missing in advertiser's file"
    ROW_ERROR = "row_error", "Row error"


class ReconciliationError(DomainError):
    """The file as a whole cannot be reconciled (too big, not UTF-8, no id column, …)."""


# --- Parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdvertiserRow:
    line: int
    order_id: str
    click_id: str
    amount: Decimal | None
    status: ConversionStatus | None
    currency: str


@dataclass
class ParsedFile:
    rows: list[AdvertiserRow]
    errors: list[dict[str, Any]]
    columns: list[str]


def _header_name(raw: str) -> str:
    return raw.strip().strip('"').lower().replace(" ", "_").replace("-", "_")


def _delimiter_for(header_line: str) -> str:
    """The delimiter that splits the header into the most known column names (",", ";", tab or
    "|"); a header is short and made of names we know, so this is surer than csv.Sniffer's
    guess from the data rows."""

    def known(delimiter: str) -> int:
        try:
            names = next(csv.reader([header_line], delimiter=delimiter), [])
        except csv.Error:
            return 0
        return sum(_header_name(name) in _COLUMN_FOR_HEADER for name in names)

    return max(_DELIMITERS, key=known)  # ties: the first, ","


def _text_of(content: bytes) -> str:
    if len(content) > MAX_FILE_BYTES:
        raise ReconciliationError(
            "file_too_large",
            message=f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            http_status=413,
        )
    try:
        text = content.decode("utf-8-sig")  # an Excel export starts with a BOM
    except UnicodeDecodeError as exc:
        raise ReconciliationError(
            "not_utf8",
            message=f"the file is not UTF-8 text (byte {exc.start}); export it as CSV UTF-8",
        ) from exc
    if "\x00" in text:
        raise ReconciliationError("not_csv", message="the file is not a CSV text file")
    return text


def _row_error(line: int, code: str, message: str, **values: str) -> dict[str, Any]:
    return {
        "category": ReconciliationCategory.ROW_ERROR.value,
        "line": line,
        "code": code,
        "message": message,
        **values,
    }


def reconciliation_csv_parse(*, content: bytes) -> ParsedFile:
    """Read the advertiser's CSV. A file-level problem raises ReconciliationError; a bad line is
    a row error with its line number and the rest of the file is still read."""
    text = _text_of(content)
    header_line = re.split(r"[\r\n]", text, maxsplit=1)[0]
    if not header_line.strip():
        raise ReconciliationError("empty_file", message="the file is empty or has no header row")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter_for(header_line))
    try:
        header = next(reader)
        positions: dict[str, int] = {}
        for index, raw_name in enumerate(header):
            column = _COLUMN_FOR_HEADER.get(_header_name(raw_name))
            if column is not None and column not in positions:
                positions[column] = index
        if "order_id" not in positions and "click_id" not in positions:
            accepted = ", ".join(COLUMN_ALIASES["order_id"] + COLUMN_ALIASES["click_id"])
            raise ReconciliationError(
                "missing_id_column",
                message=f"the header row needs an order id or click id column ({accepted})",
            )
        rows: list[AdvertiserRow] = []
        errors: list[dict[str, Any]] = []
        first_line_of: dict[tuple[str, str], int] = {}
        data_rows = 0
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank lines, trailing newlines
            data_rows += 1
            if data_rows > MAX_ROWS:
                raise ReconciliationError(
                    "too_many_rows",
                    message=f"the file has more than {MAX_ROWS} rows; split it by period",
                )
            parsed = _row_parse(record, positions, line=reader.line_num)
            if isinstance(parsed, dict):
                errors.append(parsed)
                continue
            key = (parsed.order_id, parsed.click_id)
            if key in first_line_of:
                errors.append(
                    _row_error(
                        parsed.line,
                        "duplicate_row",
                        f"the same ids as line {first_line_of[key]}",
                        order_id=parsed.order_id,
                        click_id=parsed.click_id,
                    )
                )
                continue
            first_line_of[key] = parsed.line
            rows.append(parsed)
    except csv.Error as exc:
        raise ReconciliationError(
            "invalid_csv", message=f"line {reader.line_num}: not valid CSV ({exc})"
        ) from exc
    return ParsedFile(rows=rows, errors=errors, columns=sorted(positions))


def _row_parse(
    record: list[str], positions: dict[str, int], *, line: int
) -> AdvertiserRow | dict[str, Any]:
    def cell(column: str) -> str:
        index = positions.get(column)
        if index is None or index >= len(record):
            return ""
        return record[index].strip()

    order_id, click_id = cell("order_id"), cell("click_id")
    if not order_id and not click_id:
        return _row_error(line, "missing_id", "no order id and no click id")
    if len(order_id) > MAX_ID_LENGTH or len(click_id) > MAX_ID_LENGTH:
        return _row_error(line, "invalid_id", f"an id is longer than {MAX_ID_LENGTH} characters")
    ids = {"order_id": order_id, "click_id": click_id}
    raw_amount = cell("amount")
    amount: Decimal | None = None
    if raw_amount:
        try:
            amount = amount_parse(raw_amount)
        except InvalidAmount:
            return _row_error(
                line,
                "invalid_amount",
                f"amount {raw_amount[:40]!r} is not a plain decimal number like 12.50",
                **ids,
            )
    raw_status = cell("status")
    status: ConversionStatus | None = None
    if raw_status:
        status = STATUS_ALIASES.get(raw_status.lower())
        if status is None:
            return _row_error(
                line,
                "invalid_status",
                f"status {raw_status[:40]!r} is not approved, pending or rejected",
                **ids,
            )
    currency = cell("currency").upper()
    if currency and currency not in Currency.values:
        return _row_error(line, "invalid_currency", f"unknown currency {currency[:8]!r}", **ids)
    return AdvertiserRow(
        line=line,
        order_id=order_id,
        click_id=click_id,
        amount=amount,
        status=status,
        currency=currency,
    )


# --- Comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ours:
    id: int
    order_id: str
    click_id: str
    sale_amount: Decimal | None
    status: str
    currency: str
    created_at: dt.datetime


_OURS_FIELDS = ("id", "order_id", "click_id", "sale_amount", "status", "currency", "created_at")


def _batches(values: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) == _LOOKUP_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _ours_for(*, advertiser_id: int, rows: list[AdvertiserRow]) -> list[_Ours]:
    """The advertiser's conversions (and only its own) carrying one of the file's ids."""
    own = Conversion.objects.filter(offer__advertiser_id=advertiser_id)
    found: dict[int, _Ours] = {}
    order_ids = {row.order_id for row in rows if row.order_id}
    click_ids = {row.click_id for row in rows if row.click_id}
    for field, values in (("order_id", order_ids), ("click_id", click_ids)):
        for batch in _batches(sorted(values)):
            for values_row in own.filter(**{f"{field}__in": batch}).values_list(*_OURS_FIELDS):
                found.setdefault(values_row[0], _Ours(*values_row))
    return list(found.values())


def _same_status(ours: str, theirs: ConversionStatus) -> bool:
    # A conversion we reversed is, for the advertiser, a rejected one.
    if theirs == ConversionStatus.REJECTED:
        return ours in (ConversionStatus.REJECTED, ConversionStatus.REVERSED)
    return ours == theirs


def _target_status(ours: str, theirs: str) -> ConversionStatus:
    """The status applying the advertiser's would give ours: "rejected" takes an approved
    conversion back (reversed), the others are themselves."""
    if theirs == ConversionStatus.REJECTED:
        return reversal_status_for(ours)
    return ConversionStatus(theirs)


def _status_applicable(ours: str, theirs: str) -> bool:
    return status_move_allowed(
        old=ours, new=_target_status(ours, theirs), source=StatusChangeSource.RECONCILIATION
    )


def _amounts_differ(ours: Decimal | None, theirs: Decimal | None, currency: str) -> bool:
    if theirs is None:
        return False  # the file did not say
    return money_round(ours or Decimal(0), currency) != money_round(theirs, currency)


class _Matcher:
    """One file row to at most one of our conversions and back. Preference: order id and click
    id both equal; then the order id (or, for a row with only a click id, the click id); then a
    conversion on the row's click that we recorded without an order id. Among equals, the one
    with the same amount, then the oldest."""

    def __init__(self, ours: list[_Ours]) -> None:
        self.by_order: dict[str, list[_Ours]] = defaultdict(list)
        self.by_click: dict[str, list[_Ours]] = defaultdict(list)
        for conversion in ours:
            if conversion.order_id:
                self.by_order[conversion.order_id].append(conversion)
            if conversion.click_id:
                self.by_click[conversion.click_id].append(conversion)
        self.taken: set[int] = set()

    def match(self, row: AdvertiserRow) -> _Ours | None:
        ranked: dict[int, tuple[int, _Ours]] = {}
        if row.order_id:
            for conversion in self.by_order.get(row.order_id, []):
                both = bool(row.click_id) and conversion.click_id == row.click_id
                ranked[conversion.id] = (0 if both else 1, conversion)
        if row.click_id:
            for conversion in self.by_click.get(row.click_id, []):
                if conversion.id in ranked:
                    continue
                if not row.order_id:
                    ranked[conversion.id] = (1, conversion)
                elif not conversion.order_id:
                    ranked[conversion.id] = (2, conversion)
                # else: another order on the same click (a repeat sale), not this row's
        free = [(rank, c) for c_id, (rank, c) in ranked.items() if c_id not in self.taken]
        if not free:
            return None
        _rank, best = min(
            free,
            key=lambda item: (
                item[0],
                _amounts_differ(item[1].sale_amount, row.amount, item[1].currency),
                item[1].id,
            ),
        )
        self.taken.add(best.id)
        return best


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _status_value(status: ConversionStatus | None) -> str | None:
    return None if status is None else status.value


class _Summary:
    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.network: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        self.advertiser: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))

    def add(
        self,
        category: ReconciliationCategory,
        *,
        currency: str,
        network: Decimal | None = None,
        advertiser: Decimal | None = None,
    ) -> None:
        self.counts[category] += 1
        if network is not None:
            self.network[category][currency] += network
        if advertiser is not None:
            self.advertiser[category][currency] += advertiser

    def as_json(self) -> dict[str, Any]:
        def sums(by_currency: dict[str, Decimal]) -> dict[str, str]:
            return {currency: str(total) for currency, total in sorted(by_currency.items())}

        return {
            category.value: {
                "count": self.counts[category],
                "network_amount": sums(self.network[category]),
                "advertiser_amount": sums(self.advertiser[category]),
            }
            for category in ReconciliationCategory
        }


def _default_currency(advertiser_id: int) -> str:
    """For file rows we cannot pair and that name no currency: the advertiser's, when all its
    offers use one; else "" (unknown)."""
    currencies = set(
        Offer.objects.filter(advertiser_id=advertiser_id)
        .order_by()
        .values_list("currency", flat=True)
        .distinct()[:2]
    )
    return currencies.pop() if len(currencies) == 1 else ""


def _day_bounds(date_from: dt.date, date_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
    return start, end


def reconciliation_period_check(date_from: dt.date | None, date_to: dt.date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise ReconciliationError("invalid_date_range", message="date_from is after date_to")
    if date_to and date_to.year > 9998:
        raise ReconciliationError("invalid_date_range", message="date_to is out of range")


@transaction.atomic
def reconciliation_run_create(
    *,
    advertiser_id: int,
    user_id: int | None,
    file_name: str,
    content: bytes,
    now: dt.datetime,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
) -> ReconciliationRun:
    """Compare the advertiser's CSV with its conversions and store the report. Only this
    advertiser's conversions are ever looked at. The period is in UTC days; without one, it is
    the span of the conversions the file matched."""
    reconciliation_period_check(date_from, date_to)
    parsed = reconciliation_csv_parse(content=content)
    summary = _Summary()
    report: list[dict[str, Any]] = []
    reported: dict[str, int] = defaultdict(int)
    truncated: dict[str, int] = {}

    def keep(row: dict[str, Any]) -> None:
        category = row["category"]
        # Status mismatches are always kept: applying them needs every one.
        if (
            category != ReconciliationCategory.STATUS_MISMATCH
            and reported[category] >= MAX_REPORTED_PER_CATEGORY
        ):
            truncated[category] = truncated.get(category, 0) + 1
            return
        reported[category] += 1
        report.append(row)

    for error in parsed.errors:
        summary.add(ReconciliationCategory.ROW_ERROR, currency="")
        keep(error)

    matcher = _Matcher(_ours_for(advertiser_id=advertiser_id, rows=parsed.rows))
    fallback_currency = _default_currency(advertiser_id)
    matched_days: list[dt.date] = []
    for row in parsed.rows:
        ours = matcher.match(row)
        ids = {"line": row.line, "order_id": row.order_id, "click_id": row.click_id}
        if ours is None:
            currency = row.currency or fallback_currency
            summary.add(
                ReconciliationCategory.MISSING_IN_NETWORK, currency=currency, advertiser=row.amount
            )
            keep(
                {
                    "category": ReconciliationCategory.MISSING_IN_NETWORK.value,
                    **ids,
                    "currency": currency,
                    "advertiser_amount": _money(row.amount),
                    "advertiser_status": _status_value(row.status),
                }
            )
            continue
        matched_days.append(ours.created_at.astimezone(dt.UTC).date())
        pair = {
            **ids,
            "conversion_id": ours.id,
            "conversion_order_id": ours.order_id,
            "conversion_click_id": ours.click_id,
            "created_at": ours.created_at.isoformat(),
            "currency": ours.currency,
            "network_amount": _money(ours.sale_amount),
            "advertiser_amount": _money(row.amount),
            "network_status": ours.status,
            "advertiser_status": _status_value(row.status),
        }
        amounts = {"network": ours.sale_amount, "advertiser": row.amount}
        amount_differs = _amounts_differ(ours.sale_amount, row.amount, ours.currency)
        if row.currency and row.currency != ours.currency:
            amount_differs = row.amount is not None
            pair["advertiser_currency"] = row.currency
        their_status = row.status
        status_differs = their_status is not None and not _same_status(ours.status, their_status)
        if amount_differs:
            summary.add(ReconciliationCategory.AMOUNT_MISMATCH, currency=ours.currency, **amounts)
            keep({"category": ReconciliationCategory.AMOUNT_MISMATCH.value, **pair})
        if their_status is not None and status_differs:
            summary.add(ReconciliationCategory.STATUS_MISMATCH, currency=ours.currency, **amounts)
            keep(
                {
                    "category": ReconciliationCategory.STATUS_MISMATCH.value,
                    **pair,
                    "applicable": _status_applicable(ours.status, their_status),
                }
            )
        if not amount_differs and not status_differs:
            summary.add(ReconciliationCategory.MATCHED, currency=ours.currency, **amounts)

    period_from = date_from or (min(matched_days) if matched_days else None)
    period_to = date_to or (max(matched_days) if matched_days else None)
    if period_from and not period_to:
        period_to = max(period_from, now.astimezone(dt.UTC).date())
    if period_to and not period_from:
        period_from = period_to
    if period_from and period_to:
        start, end = _day_bounds(period_from, period_to)
        in_period = Conversion.objects.filter(
            offer__advertiser_id=advertiser_id, created_at__gte=start, created_at__lt=end
        ).order_by("id")
        for values_row in in_period.values_list(*_OURS_FIELDS).iterator(chunk_size=5_000):
            ours = _Ours(*values_row)
            if ours.id in matcher.taken:
                continue
            summary.add(
                ReconciliationCategory.MISSING_IN_ADVERTISER,
                currency=ours.currency,
                network=ours.sale_amount,
            )
            keep(
                {
                    "category": ReconciliationCategory.MISSING_IN_ADVERTISER.value,
                    "line": None,
                    "conversion_id": ours.id,
                    "order_id": ours.order_id,
                    "click_id": ours.click_id,
                    "created_at": ours.created_at.isoformat(),
                    "currency": ours.currency,
                    "network_amount": _money(ours.sale_amount),
                    "network_status": ours.status,
                }
            )

    order = {category.value: index for index, category in enumerate(ReconciliationCategory)}
    report.sort(key=lambda r: (order[r["category"]], r["line"] or 0, r.get("conversion_id") or 0))
    return ReconciliationRun.objects.create(
        advertiser_id=advertiser_id,
        created_by_id=user_id,
        created_at=now,
        file_name=file_name[:255],
        date_from=period_from,
        date_to=period_to,
        summary={
            "rows": len(parsed.rows) + len(parsed.errors),
            "columns": parsed.columns,
            "categories": summary.as_json(),
            "not_listed": truncated,
        },
        report=report,
    )


# --- Applying ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyResult:
    run: ReconciliationRun
    applied_now: bool
    changed: int
    unchanged: int
    refused: int


def reconciliation_list(*, advertiser_id: int | None) -> QuerySet[ReconciliationRun]:
    """Runs the caller may see: an advertiser its own, staff (None) all."""
    runs = ReconciliationRun.objects.select_related("advertiser").order_by("-id")
    if advertiser_id is not None:
        runs = runs.filter(advertiser_id=advertiser_id)
    return runs


def _apply_row(
    row: dict[str, Any],
    *,
    run: ReconciliationRun,
    user_id: int | None,
    now: dt.datetime,
    scrub_window: dt.timedelta | None,
) -> str:
    """Set one conversion to the advertiser's status; returns the outcome for the report."""
    conversion_id = int(row["conversion_id"])
    theirs = ConversionStatus(row["advertiser_status"])
    reason = f"reconciliation {run.pk}, line {row['line']}"
    if theirs == ConversionStatus.REJECTED:
        if scrub_window is not None:
            # The advertiser acting on its own: taking a conversion back is a scrub, held to the
            # same window as one made conversion by conversion.
            created_at = (
                Conversion.objects.filter(pk=conversion_id, offer__advertiser_id=run.advertiser_id)
                .values_list("created_at", flat=True)
                .first()
            )
            if created_at is not None and now - created_at > scrub_window:
                raise StatusChangeRefused("scrub_window_closed", http_status=409)
        _conversion, changed = conversion_reverse(
            conversion_id=conversion_id,
            source=StatusChangeSource.RECONCILIATION,
            now=now,
            user_id=user_id,
            reason=reason,
            advertiser_id=run.advertiser_id,
        )
    else:
        _conversion, changed = conversion_status_change(
            conversion_id=conversion_id,
            new_status=theirs,
            source=StatusChangeSource.RECONCILIATION,
            now=now,
            user_id=user_id,
            reason=reason,
            advertiser_id=run.advertiser_id,
        )
    return "changed" if changed else "unchanged"


def reconciliation_apply(
    *,
    run_id: int,
    user_id: int | None,
    now: dt.datetime,
    advertiser_id: int | None = None,
) -> ApplyResult:
    """Set every status-mismatch conversion of the run to the advertiser's status, through the
    status service (so each move is checked, recorded with source "reconciliation", and followed
    by its postbacks and ledger entries). Amounts are never changed.

    Idempotent: a run is applied once; a second call answers the first outcome and changes
    nothing. A move the status rules refuse (an approved conversion cannot go back to pending, a
    reversed one is final) is reported on its row, not raised. `advertiser_id` is the advertiser
    acting for itself: only its own runs, and its reversals held to its scrub window."""
    with transaction.atomic():
        runs = ReconciliationRun.objects.select_for_update().select_related("advertiser")
        if advertiser_id is not None:
            runs = runs.filter(advertiser_id=advertiser_id)
        run = runs.filter(pk=run_id).first()
        if run is None:
            raise ReconciliationError("reconciliation_not_found", http_status=404)
        if run.applied_at is not None:
            applied = run.summary.get("applied", {})
            return ApplyResult(
                run=run,
                applied_now=False,
                changed=int(applied.get("changed", 0)),
                unchanged=int(applied.get("unchanged", 0)),
                refused=int(applied.get("refused", 0)),
            )
        scrub_window = (
            dt.timedelta(days=run.advertiser.scrub_window_days)
            if advertiser_id is not None
            else None
        )
        outcomes: dict[str, int] = defaultdict(int)
        for row in run.report:
            if row["category"] != ReconciliationCategory.STATUS_MISMATCH:
                continue
            try:
                outcome = _apply_row(
                    row, run=run, user_id=user_id, now=now, scrub_window=scrub_window
                )
            except StatusChangeRefused as refused:
                row["apply_result"] = "refused"
                row["apply_error"] = refused.code
                outcomes["refused"] += 1
                continue
            row["apply_result"] = outcome
            outcomes[outcome] += 1
        counts = {key: outcomes[key] for key in ("changed", "unchanged", "refused")}
        run.summary = {**run.summary, "applied": counts}
        run.applied_at = now
        run.applied_by_id = user_id
        run.save(update_fields=["summary", "report", "applied_at", "applied_by"])
    return ApplyResult(run=run, applied_now=True, **counts)
