"""The commission ledger: accrual, reversal, idempotency, batching, append-only, balances."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext

from apps.commissions.models import EntryKind, LedgerEntry
from apps.commissions.services import balance_for_affiliate, commission_accrue
from apps.commissions.tasks import accrue_for_conversion, accrue_pending
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def make_conversion(goal, affiliate):
    """Conversions of one affiliate on the `goal` fixture's offer."""

    def make(**kwargs) -> Conversion:
        click = factories.ClickFactory(offer=goal.offer, affiliate=affiliate)
        return factories.ConversionFactory(click=click, goal=goal, **kwargs)

    return make


def _ledger() -> list[tuple]:
    return list(
        LedgerEntry.objects.order_by("id").values_list(
            "conversion_id", "kind", "amount", "currency", "affiliate_id"
        )
    )


def _set_status(conversion: Conversion, status: str, **changes) -> None:
    Conversion.objects.filter(pk=conversion.pk).update(status=status, **changes)


# --- accrual --------------------------------------------------------------------------------------


def test_approved_conversion_earns_exactly_one_commission(make_conversion, affiliate):
    conversion = make_conversion(payout=Decimal("2.50"))

    assert commission_accrue() == 1

    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.currency) == ("commission", Decimal("2.50"), "USD")
    assert (entry.affiliate, entry.conversion) == (affiliate, conversion)
    assert entry.memo == f"conversion {conversion.pk}"
    assert type(entry.amount) is Decimal


def test_currency_comes_from_the_conversion(make_conversion, affiliate):
    conversion = make_conversion(payout=Decimal("1006"), currency="JPY")
    commission_accrue()
    assert _ledger() == [(conversion.pk, "commission", Decimal("1006"), "JPY", affiliate.pk)]


@pytest.mark.parametrize(
    ("status", "payout"),
    [
        (ConversionStatus.PENDING, Decimal("2.50")),
        (ConversionStatus.REJECTED, Decimal("2.50")),
        (ConversionStatus.REVERSED, Decimal("2.50")),
        (ConversionStatus.APPROVED, Decimal("0")),
    ],
)
def test_nothing_for_unpayable_conversions(make_conversion, status, payout):
    make_conversion(status=status, payout=payout)
    assert commission_accrue() == 0
    assert LedgerEntry.objects.count() == 0


def test_running_again_writes_nothing(make_conversion):
    make_conversion()
    make_conversion(payout=Decimal("7.00"))
    assert commission_accrue() == 2
    assert commission_accrue() == 0
    assert commission_accrue() == 0
    assert LedgerEntry.objects.count() == 2


def test_pending_conversion_is_paid_once_approved(make_conversion, affiliate):
    conversion = make_conversion(status=ConversionStatus.PENDING)
    assert commission_accrue() == 0
    _set_status(conversion, ConversionStatus.APPROVED)
    assert commission_accrue() == 1
    assert _ledger() == [(conversion.pk, "commission", Decimal("2.50"), "USD", affiliate.pk)]


def test_only_the_given_conversions(make_conversion):
    first = make_conversion()
    make_conversion()
    assert commission_accrue(conversion_ids=[first.pk]) == 1
    assert list(LedgerEntry.objects.values_list("conversion_id", flat=True)) == [first.pk]
    assert commission_accrue(conversion_ids=[]) == 0
    assert commission_accrue() == 1


def test_one_entry_per_conversion_and_kind_is_a_database_rule(make_conversion):
    conversion = make_conversion()
    commission_accrue()
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            affiliate_id=conversion.affiliate_id,
            kind=EntryKind.COMMISSION,
            amount=Decimal("2.50"),
            currency="USD",
            conversion=conversion,
        )
    assert LedgerEntry.objects.count() == 1


# --- reversal -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [ConversionStatus.REJECTED, ConversionStatus.REVERSED])
def test_reversal_takes_back_exactly_what_was_credited(make_conversion, affiliate, status):
    conversion = make_conversion(payout=Decimal("2.50"))
    commission_accrue()
    # The advertiser scrubs it, and the payout on the row changes too: the ledger reverses what
    # was actually credited.
    _set_status(conversion, status, payout=Decimal("9.99"))

    assert commission_accrue() == 1
    assert commission_accrue() == 0

    assert _ledger() == [
        (conversion.pk, "commission", Decimal("2.50"), "USD", affiliate.pk),
        (conversion.pk, "reversal", Decimal("-2.50"), "USD", affiliate.pk),
    ]
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("0.00")}


def test_reversal_debits_whoever_was_credited_in_that_currency(make_conversion, affiliate):
    conversion = make_conversion(payout=Decimal("2.50"))
    commission_accrue()
    other = factories.AffiliateFactory()
    _set_status(conversion, ConversionStatus.REJECTED, affiliate=other, currency="EUR")

    commission_accrue()

    assert _ledger() == [
        (conversion.pk, "commission", Decimal("2.50"), "USD", affiliate.pk),
        (conversion.pk, "reversal", Decimal("-2.50"), "USD", affiliate.pk),
    ]
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("0.00")}
    assert balance_for_affiliate(affiliate_id=other.pk) == {}


def test_rejected_before_it_was_ever_credited_writes_nothing(make_conversion):
    conversion = make_conversion()
    _set_status(conversion, ConversionStatus.REJECTED)
    assert commission_accrue() == 0
    assert LedgerEntry.objects.count() == 0


def test_pending_again_after_credit_is_not_reversed(make_conversion):
    """Only rejected and reversed take money back; pending keeps what was credited."""
    conversion = make_conversion()
    commission_accrue()
    _set_status(conversion, ConversionStatus.PENDING)
    assert commission_accrue() == 0
    assert list(LedgerEntry.objects.values_list("kind", flat=True)) == ["commission"]


def test_accrual_and_reversal_in_one_run(make_conversion, affiliate):
    old = make_conversion(payout=Decimal("5.00"))
    commission_accrue()
    _set_status(old, ConversionStatus.REJECTED)
    new = make_conversion(payout=Decimal("1.25"))

    assert commission_accrue() == 2
    assert _ledger() == [
        (old.pk, "commission", Decimal("5.00"), "USD", affiliate.pk),
        (new.pk, "commission", Decimal("1.25"), "USD", affiliate.pk),
        (old.pk, "reversal", Decimal("-5.00"), "USD", affiliate.pk),
    ]


def test_re_approved_after_a_reversal_is_credited_again(make_conversion, affiliate):
    conversion = make_conversion(payout=Decimal("2.50"))
    commission_accrue()
    _set_status(conversion, ConversionStatus.REJECTED)
    commission_accrue()
    _set_status(conversion, ConversionStatus.APPROVED, payout=Decimal("3.00"))
    assert commission_accrue() == 1
    assert commission_accrue() == 0
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("3.00")}
    # And flipping once more takes back the second credit, exactly.
    _set_status(conversion, ConversionStatus.REVERSED)
    assert commission_accrue() == 1
    assert commission_accrue() == 0
    assert list(LedgerEntry.objects.order_by("id").values_list("kind", "cycle", "amount")) == [
        ("commission", 0, Decimal("2.50")),
        ("reversal", 0, Decimal("-2.50")),
        ("commission", 1, Decimal("3.00")),
        ("reversal", 1, Decimal("-3.00")),
    ]
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("0.00")}


# --- batching -------------------------------------------------------------------------------------


def test_works_in_bounded_id_ranges(make_conversion, affiliate, settings):
    settings.COMMISSIONS_ACCRUE_BATCH_SIZE = 3
    conversions = [make_conversion(payout=Decimal(f"{n}.01")) for n in range(1, 11)]
    assert [c.pk for c in conversions] == list(range(conversions[0].pk, conversions[0].pk + 10))

    with CaptureQueriesContext(connection) as accrual:
        assert commission_accrue() == 10
    for conversion in conversions:
        _set_status(conversion, ConversionStatus.REJECTED)
    with CaptureQueriesContext(connection) as reversal:
        assert commission_accrue() == 10

    # 10 ids in ranges of 3: four ranges, each with its four INSERT ... SELECT statements (tiers
    # reached, commissions with their referrals, reversals, referral reversals) bounded by its
    # range, in its own transaction; plus one read of the id bounds.
    for queries in (accrual, reversal):
        inserts = [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"]]
        assert len(inserts) == 16
        assert [" ".join(sql.split()[:3]) for sql in inserts[:4]] == [
            "INSERT INTO commissions_tierreached",
            "WITH due AS",  # ..., credited AS (INSERT ...), referred AS (INSERT ...)
            "INSERT INTO commissions_ledgerentry",
            "INSERT INTO commissions_ledgerentry",
        ]
        assert all("c.id >= " in sql and "c.id < " in sql for sql in inserts)
        assert sum("min(id)" in q["sql"] for q in queries.captured_queries) == 1
    expected_commissions = [
        (c.pk, "commission", Decimal(f"{n}.01"), "USD", affiliate.pk)
        for n, c in enumerate(conversions, start=1)
    ]
    expected_reversals = [
        (c.pk, "reversal", Decimal(f"-{n}.01"), "USD", affiliate.pk)
        for n, c in enumerate(conversions, start=1)
    ]
    assert _ledger() == expected_commissions + expected_reversals
    assert commission_accrue() == 0
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {"USD": Decimal("0.00")}


def test_a_run_stopped_halfway_then_run_again_gives_the_same_ledger(make_conversion, settings):
    settings.COMMISSIONS_ACCRUE_BATCH_SIZE = 2
    conversions = [make_conversion() for _ in range(5)]
    # Halfway: only some conversions got their entries before the "crash".
    commission_accrue(conversion_ids=[conversions[0].pk, conversions[3].pk])
    assert commission_accrue() == 3
    assert commission_accrue() == 0
    assert sorted(LedgerEntry.objects.values_list("conversion_id", flat=True)) == sorted(
        c.pk for c in conversions
    )


# --- append-only ----------------------------------------------------------------------------------


@pytest.fixture
def entry(make_conversion):
    make_conversion(payout=Decimal("2.50"))
    commission_accrue()
    return LedgerEntry.objects.get()


def _unchanged(entry: LedgerEntry) -> None:
    assert list(LedgerEntry.objects.values_list("pk", "amount", "kind")) == [
        (entry.pk, Decimal("2.50"), "commission")
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE commissions_ledgerentry SET amount = 1000",
        "DELETE FROM commissions_ledgerentry",
    ],
)
def test_database_refuses_raw_update_and_delete(entry, sql):
    with (
        pytest.raises(ProgrammingError, match="ledger entries are append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    _unchanged(entry)


def test_database_refuses_orm_update(entry):
    with (
        pytest.raises(ProgrammingError, match=r"append-only \(UPDATE refused\)"),
        transaction.atomic(),
    ):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=Decimal("1000"))
    _unchanged(entry)


def test_database_refuses_orm_delete(entry):
    with (
        pytest.raises(ProgrammingError, match=r"append-only \(DELETE refused\)"),
        transaction.atomic(),
    ):
        LedgerEntry.objects.all().delete()
    _unchanged(entry)


def test_database_refuses_instance_save_and_delete(entry):
    entry.amount = Decimal("1000")
    with pytest.raises(ProgrammingError), transaction.atomic():
        entry.save()
    with pytest.raises(ProgrammingError), transaction.atomic():
        entry.delete()
    _unchanged(entry)


def test_a_credited_conversion_cannot_be_deleted(entry):
    with pytest.raises(ProtectedError), transaction.atomic():
        entry.conversion.delete()


# --- balances -------------------------------------------------------------------------------------


def test_balance_sums_per_currency(make_conversion, affiliate):
    make_conversion(payout=Decimal("2.50"))
    make_conversion(payout=Decimal("3.00"))
    rejected = make_conversion(payout=Decimal("1.10"))
    make_conversion(payout=Decimal("1.00"), currency="EUR")
    make_conversion(payout=Decimal("1500"), currency="JPY")
    commission_accrue()
    _set_status(rejected, ConversionStatus.REJECTED)
    commission_accrue()
    LedgerEntry.objects.create(
        affiliate=affiliate, kind=EntryKind.ADJUSTMENT, amount=Decimal("-0.50"), currency="EUR"
    )
    # Another affiliate's money is not ours.
    factories.ConversionFactory(payout=Decimal("100.00"))
    commission_accrue()

    balance = balance_for_affiliate(affiliate_id=affiliate.pk)
    assert balance == {"EUR": Decimal("0.50"), "JPY": Decimal("1500"), "USD": Decimal("5.50")}
    assert list(balance) == ["EUR", "JPY", "USD"]
    assert all(type(amount) is Decimal for amount in balance.values())


def test_balance_of_an_affiliate_without_entries_is_empty(affiliate):
    assert balance_for_affiliate(affiliate_id=affiliate.pk) == {}


# --- command and tasks ----------------------------------------------------------------------------


def test_management_command_prints_the_count(make_conversion):
    make_conversion()
    make_conversion()
    out = StringIO()
    call_command("accrue_commissions", stdout=out)
    assert out.getvalue() == "ledger entries written: 2\n"
    out = StringIO()
    call_command("accrue_commissions", stdout=out)
    assert out.getvalue() == "ledger entries written: 0\n"
    assert LedgerEntry.objects.count() == 2


def test_accrue_for_conversion_task_touches_only_its_conversion(make_conversion, affiliate):
    mine = make_conversion()
    other = make_conversion()
    result = accrue_for_conversion.apply(args=[mine.pk])
    assert result.successful()
    assert _ledger() == [(mine.pk, "commission", Decimal("2.50"), "USD", affiliate.pk)]
    accrue_for_conversion.apply(args=[mine.pk])
    assert LedgerEntry.objects.count() == 1

    _set_status(mine, ConversionStatus.REJECTED)
    accrue_for_conversion.apply(args=[mine.pk])
    assert sorted(LedgerEntry.objects.values_list("conversion_id", "kind")) == [
        (mine.pk, "commission"),
        (mine.pk, "reversal"),
    ]
    assert not LedgerEntry.objects.filter(conversion=other).exists()


def test_accrue_for_a_missing_conversion_does_nothing(db):
    assert accrue_for_conversion.apply(args=[10**9]).successful()
    assert LedgerEntry.objects.count() == 0


def test_accrue_pending_task_catches_up_on_everything(make_conversion):
    conversions = [make_conversion() for _ in range(3)]
    assert accrue_pending.apply().successful()
    assert sorted(LedgerEntry.objects.values_list("conversion_id", flat=True)) == sorted(
        c.pk for c in conversions
    )
    accrue_pending.apply()
    assert LedgerEntry.objects.count() == 3


def test_tasks_are_on_the_commissions_queue():
    assert (accrue_for_conversion.name, accrue_for_conversion.queue) == (
        "commissions.accrue_for_conversion",
        "commissions",
    )
    assert (accrue_pending.name, accrue_pending.queue) == (
        "commissions.accrue_pending",
        "commissions",
    )
