"""What follows a conversion being recorded or changing status: the affiliate is told (outbound
postbacks) and the commission ledger catches up.

`conversion_changed` is called inside the transaction that wrote the change, so that whatever must
survive a crash can be written with it; queue work is only sent after commit.
"""

from __future__ import annotations

import logging

from django.db import transaction

from apps.commissions.tasks import accrue_for_conversion
from apps.conversions.models import Conversion
from apps.conversions.tasks import fire_affiliate_postbacks

logger = logging.getLogger(__name__)


def conversion_changed(conversion: Conversion) -> None:
    """Call inside the transaction that recorded the conversion or changed its status."""
    conversion_id = conversion.pk
    transaction.on_commit(lambda: _enqueue_after_commit(conversion_id))


def _enqueue_after_commit(conversion_id: int) -> None:
    """A broker outage must not fail the caller; the commission beat job catches up on anything
    missed here."""
    for task in (fire_affiliate_postbacks, accrue_for_conversion):
        try:
            task.delay(conversion_id)
        except Exception:
            logger.exception("could not enqueue %s for conversion %s", task.name, conversion_id)
