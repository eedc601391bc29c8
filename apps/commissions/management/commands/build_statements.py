from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.commissions.services import statements_build


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


class Command(BaseCommand):
    help = (
        "Build statements for billing periods that end between --date-from and --date-to "
        "(inclusive) and are closed. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date-from", required=True, type=str)
        parser.add_argument("--date-to", required=True, type=str)

    def handle(self, *args: Any, **options: Any) -> None:
        date_from, date_to = _date(options["date_from"]), _date(options["date_to"])
        if date_from > date_to:
            raise CommandError("--date-from is after --date-to")
        result = statements_build(date_from=date_from, date_to=date_to)
        self.stdout.write(f"statements built: {result.created}, rolled over: {result.rolled_over}")
