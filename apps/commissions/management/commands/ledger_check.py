from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.commissions.selectors import ledger_check


class Command(BaseCommand):
    help = "Reconcile the ledger; exits non-zero and lists every drift found."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace-minutes",
            type=int,
            default=settings.COMMISSIONS_CHECK_GRACE_MINUTES,
            help="Skip conversions changed this recently (the accrual job's turn).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settled_before = timezone.now() - dt.timedelta(minutes=options["grace_minutes"])
        drifts = ledger_check(settled_before=settled_before)
        if not drifts:
            self.stdout.write("ledger ok")
            return
        for drift in drifts:
            self.stderr.write(f"DRIFT {drift.check}: {len(drift.rows)} rows")
            for row in drift.rows:
                self.stderr.write(f"  {row!r}")
        raise CommandError(f"ledger drift: {', '.join(d.check for d in drifts)}")
