"""The incremental accrual: the database queues every conversion change the ledger cares about;
the beat job works the queue, not the whole conversions table."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.commissions.models import AccrualQueue, LedgerEntry
from apps.commissions.selectors import accrual_queue_length, ledger_check
from apps.commissions.services import QueueRun, commission_accrue, commission_accrue_queued
from apps.commissions.tasks import accrue_pending
from apps.common.money import money_round
from apps.common.redis import redis_client
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus, PayoutTier
from apps.partners.models import Affiliate
from tests import factories
from tests.commissions.conftest import T0, at

pytestmark = pytest.mark.django_db


def _queued() -> list[int]:
    return list(AccrualQueue.objects.order_by("id").values_list("conversion_id", flat=True))


def _ledger() -> list[tuple]:
    return sorted(
        LedgerEntry.objects.values_list(
            "conversion_id", "kind", "cycle", "amount", "currency", "affiliate_id"
        )
    )


def test_the_database_queues_what_accrual_must_see(convert):
    approved = convert()
    pending = convert(status=ConversionStatus.PENDING)
    assert _queued() == [approved.pk]  # a pending conversion has nothing to accrue yet

    AccrualQueue.objects.all().delete()
    # Changes accrual does not read queue nothing.
    Conversion.objects.filter(pk=approved.pk).update(sub1="x", quality_score=50)
    Conversion.objects.filter(pk=pending.pk).update(status=ConversionStatus.PENDING)
    assert _queued() == []
    # Status, payout and the over-cap flag do, from any code path (ORM save, bulk update).
    pending.status = ConversionStatus.APPROVED
    pending.save()
    Conversion.objects.filter(pk=approved.pk).update(payout=Decimal("3.00"))
    Conversion.objects.filter(pk=approved.pk).update(is_over_cap=True)
    Conversion.objects.filter(pk__in=[approved.pk, pending.pk]).update(status="rejected")
    queued = _queued()
    assert queued[:3] == [pending.pk, approved.pk, approved.pk]
    assert sorted(queued[3:]) == sorted([approved.pk, pending.pk])


def test_queue_run_writes_the_entries_and_empties_the_queue(convert, affiliate):
    first = convert(payout=Decimal("2.00"))
    second = convert(payout=Decimal("3.00"))
    run = commission_accrue_queued(now=T0)
    assert run == QueueRun(written=2, conversions=2, batches=1, drained=True)
    assert _queued() == []
    assert _ledger() == [
        (first.pk, "commission", 0, Decimal("2.00"), "USD", affiliate.pk),
        (second.pk, "commission", 0, Decimal("3.00"), "USD", affiliate.pk),
    ]
    Conversion.objects.filter(pk=first.pk).update(status=ConversionStatus.REVERSED)
    assert commission_accrue_queued(now=T0).written == 1
    assert commission_accrue_queued(now=T0) == QueueRun()
    assert commission_accrue(now=T0) == 0  # a full rescan agrees: nothing missing


def test_nothing_to_do_is_one_statement(convert):
    convert()
    commission_accrue_queued()
    with CaptureQueriesContext(connection) as queries:
        assert commission_accrue_queued() == QueueRun()
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"].upper()]
    assert len(statements) == 1
    assert statements[0].split()[:3] == ["DELETE", "FROM", "commissions_accrualqueue"]


def test_queue_is_worked_in_batches_in_order(convert, settings):
    settings.COMMISSIONS_ACCRUE_BATCH_SIZE = 2
    conversions = [convert() for _ in range(5)]
    run = commission_accrue_queued(max_batches=2)
    assert run == QueueRun(written=4, conversions=4, batches=2, drained=False)
    assert _queued() == [conversions[4].pk]
    assert commission_accrue_queued() == QueueRun(written=1, conversions=1, batches=1)


def test_task_re_enqueues_itself_until_the_queue_is_drained(convert, settings):
    settings.COMMISSIONS_ACCRUE_BATCH_SIZE = 2
    settings.COMMISSIONS_ACCRUE_MAX_BATCHES = 1
    for _ in range(3):
        convert()
    broker = redis_client()
    assert broker.llen("commissions") == 0
    accrue_pending.apply()
    assert accrual_queue_length() == 1
    assert broker.llen("commissions") == 1  # the next run, on the commissions queue
    accrue_pending.apply()
    assert accrual_queue_length() == 0
    assert broker.llen("commissions") == 1  # drained: no further run
    assert LedgerEntry.objects.count() == 3


def test_accruing_given_conversions_takes_them_off_the_queue(convert):
    first = convert()
    second = convert()
    assert commission_accrue(conversion_ids=[first.pk]) == 1
    assert _queued() == [second.pk]


def test_a_rolled_back_batch_stays_queued(convert):
    conversion = convert()
    with pytest.raises(RuntimeError), transaction.atomic():
        commission_accrue_queued()
        assert _queued() == []
        raise RuntimeError("worker died")
    assert _queued() == [conversion.pk]
    assert LedgerEntry.objects.count() == 0


def test_full_rescan_and_date_range_do_not_need_the_queue(convert):
    march = convert(created_at=at(2026, 3, 15))
    april = convert(created_at=at(2026, 4, 15))
    AccrualQueue.objects.all().delete()  # say, conversions from before the queue existed
    assert commission_accrue_queued().written == 0

    out = StringIO()
    call_command("accrue_commissions", "--date-from=2026-03-01", "--date-to=2026-03-31", stdout=out)
    assert out.getvalue() == "ledger entries written: 1\n"
    assert list(LedgerEntry.objects.values_list("conversion_id", flat=True)) == [march.pk]
    out = StringIO()
    call_command("accrue_commissions", "--full", stdout=out)
    assert out.getvalue() == "ledger entries written: 1\n"
    assert LedgerEntry.objects.filter(conversion=april).exists()


def test_command_date_range_is_inclusive_of_the_last_day(convert):
    last_day = convert(created_at=at(2026, 3, 31, 23, 59))
    convert(created_at=at(2026, 4, 1))
    out = StringIO()
    call_command("accrue_commissions", "--date-from=2026-03-31", "--date-to=2026-03-31", stdout=out)
    assert list(LedgerEntry.objects.values_list("conversion_id", flat=True)) == [last_day.pk]


def test_command_refuses_bad_options(db):
    with pytest.raises(CommandError, match="not a date"):
        call_command("accrue_commissions", "--date-from=yesterday")
    with pytest.raises(CommandError, match="after"):
        call_command("accrue_commissions", "--date-from=2026-04-01", "--date-to=2026-03-01")
    with pytest.raises(CommandError, match="no dates"):
        call_command("accrue_commissions", "--full", "--date-from=2026-04-01")


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_give_the_ledger_of_one_run(settings):
    """Two queue runs and a full rescan at once, on tiers and referrals: the same ledger a single
    run writes (every statement is idempotent; queue rows are taken with SKIP LOCKED)."""
    settings.COMMISSIONS_ACCRUE_BATCH_SIZE = 3
    goal = factories.GoalFactory(code="lead")
    referrer = factories.AffiliateFactory()
    affiliates = [factories.AffiliateFactory() for _ in range(3)]
    Affiliate.objects.filter(pk=affiliates[0].pk).update(
        referrer=referrer, referral_percent=Decimal("12.5"), created_at=T0
    )
    PayoutTier.objects.create(offer=goal.offer, name="Gold", threshold=4, payout=Decimal("4.00"))
    for n in range(30):
        click = factories.ClickFactory(offer=goal.offer, affiliate=affiliates[n % 3])
        factories.ConversionFactory(
            click=click,
            goal=goal,
            payout=Decimal(f"{n % 7 + 1}.15"),
            created_at=T0 + dt.timedelta(hours=n),
        )

    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run(job) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    jobs = [commission_accrue_queued, commission_accrue_queued, commission_accrue]
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    concurrent = _ledger()
    assert commission_accrue() == 0
    assert commission_accrue_queued().written == 0

    # The same conversions accrued by one run from scratch (the ledger itself is append-only, so
    # compare with what the rules give): 30 commissions, tiers from each affiliate's 4th, and a
    # referral on each of affiliates[0]'s commissions.
    kinds = [row[1] for row in concurrent]
    assert (kinds.count("commission"), kinds.count("referral")) == (30, 10)
    by_conversion = {
        c.pk: c for c in Conversion.objects.order_by("created_at", "id").select_related("affiliate")
    }
    seen: dict[int, int] = {}
    expected = []
    for conversion in by_conversion.values():
        seen[conversion.affiliate_id] = seen.get(conversion.affiliate_id, 0) + 1
        amount = conversion.payout
        if seen[conversion.affiliate_id] >= 4:
            amount = max(amount, Decimal("4.00"))
        expected.append((conversion.pk, "commission", 0, amount, "USD", conversion.affiliate_id))
        if conversion.affiliate_id == affiliates[0].pk:
            share = money_round(amount * Decimal("12.5") / 100, "USD")
            expected.append((conversion.pk, "referral", 0, share, "USD", referrer.pk))
    assert concurrent == sorted(expected)
    assert ledger_check(settled_before=at(2030, 1, 1)) == []
