"""What follows a conversion being recorded or changing status: the affiliate is told (outbound
postbacks) and the commission ledger catches up.

`conversion_changed` is called inside the transaction that wrote the change, so that whatever must
survive a crash is written with it (the postback outbox rows); queue work is only sent after commit.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from apps.commissions.tasks import accrue_for_conversion
from apps.conversions import outbound
from apps.conversions.models import Conversion

logger = logging.getLogger(__name__)


def conversion_changed(conversion: Conversion) -> None:
    """Call inside the transaction that recorded the conversion or changed its status.

    Writes the outbox rows for the affiliate's postbacks (they commit or roll back with the
    change), then, after commit, asks a worker to deliver them now and to accrue the commission.
    """
    outbox_ids = outbound.outbox_write(conversion=conversion, now=timezone.now())
    outbound.outbox_kick(outbox_ids)
    conversion_id = conversion.pk
    transaction.on_commit(lambda: _accrue_after_commit(conversion_id))


def _accrue_after_commit(conversion_id: int) -> None:
    """A broker outage must not fail the caller; the commission beat job catches up on anything
    missed here (and the postback beat job on any outbox row)."""
    try:
        accrue_for_conversion.delay(conversion_id)
    except Exception:
        logger.exception("could not enqueue accrual for conversion %s", conversion_id)
