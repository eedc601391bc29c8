"""What follows a conversion being recorded or changing status: the affiliate is told (outbound
postbacks) and the commission ledger catches up.

`conversion_changed` is called inside the transaction that wrote the change, so that whatever must
survive a crash is written with it: the postback outbox rows here, and the accrual queue row that
the database itself adds for every conversion change (a trigger, apps/commissions migration 0005),
which the accrual beat job works through every COMMISSIONS_ACCRUE_EVERY_SECONDS. No message per
conversion for the ledger: a Celery publish cost more CPU than the rest of a postback's writes.
"""

from __future__ import annotations

from django.utils import timezone

from apps.conversions import outbound
from apps.conversions.models import Conversion


def conversion_changed(conversion: Conversion) -> None:
    """Call inside the transaction that recorded the conversion or changed its status.

    Writes the outbox rows for the affiliate's postbacks (they commit or roll back with the
    change), then, after commit, asks a worker to deliver them now."""
    outbox_ids = outbound.outbox_write(conversion=conversion, now=timezone.now())
    outbound.outbox_kick(outbox_ids)
