"""A statement as CSV and as a printable HTML invoice (the same rows for staff and affiliate).
Times are shown in the time zone the statement's period was counted in (ISO 8601, with offset)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo

from django.template.loader import render_to_string

from apps.commissions.models import Statement
from apps.commissions.selectors import statement_entries

CSV_COLUMNS = [
    "entry_id",
    "kind",
    "created_at",
    "available_at",
    "conversion_id",
    "offer",
    "goal",
    "memo",
    "amount",
    "currency",
]


def _local(moment: dt.datetime, tz: zoneinfo.ZoneInfo) -> str:
    return moment.astimezone(tz).isoformat()


def _rows(statement: Statement) -> list[list[str]]:
    tz = zoneinfo.ZoneInfo(statement.timezone)
    rows = []
    for entry in statement_entries(statement=statement):
        conversion = entry.conversion
        rows.append(
            [
                str(entry.pk),
                entry.kind,
                _local(entry.created_at, tz),
                _local(entry.available_at, tz),
                str(entry.conversion_id or ""),
                conversion.offer.name if conversion else "",
                conversion.goal.code if conversion else "",
                entry.memo,
                str(entry.amount),
                entry.currency,
            ]
        )
    return rows


def statement_csv(*, statement: Statement) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_rows(statement))
    writer.writerow(["total", "", "", "", "", "", "", "", str(statement.total), statement.currency])
    return out.getvalue()


def statement_invoice_html(*, statement: Statement) -> str:
    return render_to_string(
        "commissions/statement_invoice.html",
        {"statement": statement, "columns": CSV_COLUMNS, "rows": _rows(statement)},
    )
