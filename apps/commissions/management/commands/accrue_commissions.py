from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.commissions.periods import local_midnight
from apps.commissions.services import commission_accrue, commission_accrue_queued


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


class Command(BaseCommand):
    help = (
        "Write missing commission, referral and reversal ledger entries. Without options: the "
        "queued conversions (what the beat job does). --full: rescan every conversion. "
        "--date-from/--date-to: rescan the conversions created on those days (UTC, inclusive). "
        "Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--full", action="store_true", help="Rescan every conversion.")
        parser.add_argument("--date-from", type=str, help="First day (YYYY-MM-DD, UTC).")
        parser.add_argument("--date-to", type=str, help="Last day (YYYY-MM-DD, UTC), inclusive.")

    def handle(self, *args: Any, **options: Any) -> None:
        date_from, date_to = options["date_from"], options["date_to"]
        if options["full"] and (date_from or date_to):
            raise CommandError("--full rescans everything: give it no dates")
        if date_from or date_to:
            start = _date(date_from) if date_from else None
            end = _date(date_to) if date_to else None
            if start and end and start > end:
                raise CommandError("--date-from is after --date-to")
            written = commission_accrue(
                created_from=local_midnight(start, "UTC") if start else None,
                created_to=local_midnight(end + dt.timedelta(days=1), "UTC") if end else None,
            )
        elif options["full"]:
            written = commission_accrue()
        else:
            written = commission_accrue_queued().written
        self.stdout.write(f"ledger entries written: {written}")
