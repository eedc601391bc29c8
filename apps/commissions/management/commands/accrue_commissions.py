from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.commissions.services import commission_accrue


class Command(BaseCommand):
    help = "Write missing commission and reversal ledger entries (the beat job, run by hand)."

    def handle(self, *args: Any, **options: Any) -> None:
        written = commission_accrue()
        self.stdout.write(f"ledger entries written: {written}")
