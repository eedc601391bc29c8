"""Advertiser CSV reconciliation, called directly: parsing, every report category, scoping to the
advertiser, and applying the advertiser's statuses through the status service."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.commissions.models import AccrualQueue
from apps.conversions import reconciliation
from apps.conversions.models import (
    Conversion,
    ConversionStatusChange,
    ReconciliationRun,
    StatusChangeSource,
)
from apps.conversions.reconciliation import (
    ReconciliationError,
    reconciliation_apply,
    reconciliation_csv_parse,
    reconciliation_run_create,
)
from apps.offers.models import ConversionStatus
from tests import factories

pytestmark = pytest.mark.django_db

DAY = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 20, 9, 0, tzinfo=UTC)
APPROVED, PENDING, REJECTED, REVERSED = (
    ConversionStatus.APPROVED,
    ConversionStatus.PENDING,
    ConversionStatus.REJECTED,
    ConversionStatus.REVERSED,
)


@pytest.fixture
def staff_user(db):
    return factories.UserFactory(is_staff=True)


@pytest.fixture
def make(goal, affiliate):
    """A conversion of the `goal` fixture's offer (the `advertiser` fixture's)."""

    def _make(order_id: str, amount: str | None, status: str = APPROVED, **kw) -> Conversion:
        click = factories.ClickFactory(
            offer=kw.pop("offer", goal.offer), affiliate=affiliate, created_at=DAY
        )
        return factories.ConversionFactory(
            click=click,
            goal=goal,
            order_id=order_id,
            sale_amount=None if amount is None else Decimal(amount),
            status=status,
            created_at=kw.pop("created_at", DAY),
            **kw,
        )

    return _make


def _run(advertiser, text: str, *, user=None, **kw) -> ReconciliationRun:
    return reconciliation_run_create(
        advertiser_id=advertiser.pk,
        user_id=user.pk if user else None,
        file_name="adv.csv",
        content=text.encode(),
        now=NOW,
        **kw,
    )


def _rows(run: ReconciliationRun, category: str) -> list[dict]:
    return [row for row in run.report if row["category"] == category]


def _counts(run: ReconciliationRun) -> dict[str, int]:
    return {name: c["count"] for name, c in run.summary["categories"].items()}


# --- Report categories ---------------------------------------------------------------------------


def test_every_category_is_counted_summed_and_listed(advertiser, make, staff_user):
    ok = make("o-1", "10.00")
    amount_off = make("o-2", "20.00")
    status_off = make("o-3", "30.00", APPROVED)
    both_off = make("o-4", "40.00", PENDING)
    ours_only = make("o-5", "50.00")
    csv_text = (
        "order_id,amount,status\n"
        "o-1,10.00,approved\n"
        "o-2,19.50,approved\n"
        "o-3,30,rejected\n"
        "o-4,41.00,approved\n"
        "o-999,7.25,approved\n"
    )

    run = _run(advertiser, csv_text, user=staff_user)

    assert run.advertiser_id == advertiser.pk
    assert run.created_by_id == staff_user.pk
    assert (run.created_at, run.file_name, run.applied_at) == (NOW, "adv.csv", None)
    assert (run.date_from, run.date_to) == (date(2024, 5, 10), date(2024, 5, 10))
    assert run.summary["rows"] == 5
    assert run.summary["columns"] == ["amount", "order_id", "status"]
    categories = run.summary["categories"]
    assert categories["matched"] == {
        "count": 1,
        "network_amount": {"USD": "10.0000"},
        "advertiser_amount": {"USD": "10.00"},
    }
    assert categories["amount_mismatch"] == {
        "count": 2,
        "network_amount": {"USD": "60.0000"},
        "advertiser_amount": {"USD": "60.50"},
    }
    assert categories["status_mismatch"] == {
        "count": 2,
        "network_amount": {"USD": "70.0000"},
        "advertiser_amount": {"USD": "71.00"},
    }
    assert categories["missing_in_network"] == {
        "count": 1,
        "network_amount": {},
        "advertiser_amount": {"USD": "7.25"},
    }
    assert categories["missing_in_advertiser"] == {
        "count": 1,
        "network_amount": {"USD": "50.0000"},
        "advertiser_amount": {},
    }
    assert categories["row_error"]["count"] == 0

    assert [(r["line"], r["conversion_id"]) for r in _rows(run, "amount_mismatch")] == [
        (3, amount_off.pk),
        (5, both_off.pk),
    ]
    status_rows = _rows(run, "status_mismatch")
    assert [(r["line"], r["conversion_id"]) for r in status_rows] == [
        (4, status_off.pk),
        (5, both_off.pk),
    ]
    assert status_rows[0] | {"created_at": None} == {
        "category": "status_mismatch",
        "line": 4,
        "order_id": "o-3",
        "click_id": "",
        "conversion_id": status_off.pk,
        "conversion_order_id": "o-3",
        "conversion_click_id": status_off.click_id,
        "created_at": None,
        "currency": "USD",
        "network_amount": "30.0000",
        "advertiser_amount": "30",
        "network_status": "approved",
        "advertiser_status": "rejected",
        "applicable": True,
    }
    assert _rows(run, "missing_in_network") == [
        {
            "category": "missing_in_network",
            "line": 6,
            "order_id": "o-999",
            "click_id": "",
            "currency": "USD",
            "advertiser_amount": "7.25",
            "advertiser_status": "approved",
        }
    ]
    assert [r["conversion_id"] for r in _rows(run, "missing_in_advertiser")] == [ours_only.pk]
    assert ok.pk not in {r.get("conversion_id") for r in run.report}  # matches are only counted
    # Reading changes nothing.
    assert ConversionStatusChange.objects.count() == 0


def test_amounts_compare_at_the_currencys_precision_and_blank_means_not_compared(advertiser, make):
    make("o-1", "10.0049")
    make("o-2", "10.00")
    make("o-3", None)
    make("o-4", None)
    run = _run(advertiser, "order_id,amount\no-1,10.00\no-2,\no-3,0\no-4,5.00\n")
    assert _counts(run)["matched"] == 3
    assert [r["order_id"] for r in _rows(run, "amount_mismatch")] == ["o-4"]
    assert _rows(run, "amount_mismatch")[0]["network_amount"] is None


def test_reversed_here_is_rejected_for_the_advertiser(advertiser, make):
    make("o-1", "5.00", REVERSED)
    run = _run(advertiser, "order_id,status\no-1,rejected\n")
    assert _counts(run)["matched"] == 1
    assert _counts(run)["status_mismatch"] == 0


def test_moves_the_status_rules_refuse_are_marked_not_applicable(advertiser, make):
    make("o-1", "5.00", APPROVED)
    make("o-2", "5.00", REVERSED)
    make("o-3", "5.00", REJECTED)
    run = _run(advertiser, "order_id,status\no-1,pending\no-2,approved\no-3,approved\n")
    assert [(r["order_id"], r["applicable"]) for r in _rows(run, "status_mismatch")] == [
        ("o-1", False),
        ("o-2", False),
        ("o-3", True),
    ]


def test_rows_match_by_click_id_when_the_file_has_no_order_id(advertiser, make):
    conversion = make("", "9.99")
    run = _run(advertiser, f"click_id,amount\n{conversion.click_id},9.99\n")
    assert _counts(run)["matched"] == 1
    assert _counts(run)["missing_in_advertiser"] == 0


def test_an_order_on_the_same_click_is_not_another_orders_match(advertiser, make):
    first = make("o-1", "10.00")
    run = _run(
        advertiser,
        f"order_id,click_id,amount\no-2,{first.click_id},10.00\n",
        date_from=DAY.date(),
        date_to=DAY.date(),
    )
    assert _counts(run)["missing_in_network"] == 1
    assert [r["conversion_id"] for r in _rows(run, "missing_in_advertiser")] == [first.pk]


def test_a_conversion_is_matched_by_one_row_only(advertiser, make, goal):
    conversion = make("o-1", "10.00")
    run = _run(advertiser, f"click_id,amount\n{conversion.click_id},10.00\n")
    assert _counts(run)["matched"] == 1
    other_goal = factories.GoalFactory(offer=goal.offer, code="sale", is_default=False)
    second = factories.ConversionFactory(
        click=factories.ClickFactory(offer=goal.offer, created_at=DAY),
        goal=other_goal,
        order_id="o-2",
        sale_amount=Decimal("5.00"),
        created_at=DAY,
    )
    # Two lines, one conversion each, although both lines name the order id "o-2"'s click too.
    run = _run(
        advertiser,
        f"order_id,click_id,amount\no-1,{conversion.click_id},10.00\n"
        f"o-2,{second.click_id},5.00\no-3,{second.click_id},1.00\n",
    )
    assert _counts(run)["matched"] == 2
    assert [r["order_id"] for r in _rows(run, "missing_in_network")] == ["o-3"]


# --- The period ----------------------------------------------------------------------------------


def test_the_period_bounds_missing_in_advertiser_only(advertiser, make):
    make("o-1", "1.00", created_at=datetime(2024, 5, 1, 0, 0, tzinfo=UTC))
    make("o-2", "1.00", created_at=datetime(2024, 5, 2, 23, 59, tzinfo=UTC))
    make("o-3", "1.00", created_at=datetime(2024, 5, 3, 0, 0, tzinfo=UTC))
    make("o-4", "1.00", created_at=datetime(2024, 4, 30, 23, 59, tzinfo=UTC))
    # o-4 is outside the period, and still the advertiser's order: matched, not missing.
    run = _run(
        advertiser,
        "order_id,amount\no-4,1.00\n",
        date_from=date(2024, 5, 1),
        date_to=date(2024, 5, 2),
    )
    assert (run.date_from, run.date_to) == (date(2024, 5, 1), date(2024, 5, 2))
    assert _counts(run)["matched"] == 1
    assert [r["order_id"] for r in _rows(run, "missing_in_advertiser")] == ["o-1", "o-2"]


def test_without_dates_the_period_is_the_span_of_the_matched_rows(advertiser, make):
    make("o-1", "1.00", created_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    make("o-2", "1.00", created_at=datetime(2024, 5, 2, 8, 0, tzinfo=UTC))
    make("o-3", "1.00", created_at=datetime(2024, 5, 3, 8, 0, tzinfo=UTC))
    make("o-4", "1.00", created_at=datetime(2024, 5, 4, 8, 0, tzinfo=UTC))
    run = _run(advertiser, "order_id\no-1\no-3\n")
    assert (run.date_from, run.date_to) == (date(2024, 5, 1), date(2024, 5, 3))
    assert [r["order_id"] for r in _rows(run, "missing_in_advertiser")] == ["o-2"]


def test_nothing_matched_and_no_dates_lists_no_missing_conversions(advertiser, make):
    make("o-1", "1.00")
    run = _run(advertiser, "order_id\nnope\n")
    assert (run.date_from, run.date_to) == (None, None)
    assert _counts(run)["missing_in_advertiser"] == 0


def test_date_from_after_date_to_is_refused(advertiser):
    with pytest.raises(ReconciliationError) as refused:
        _run(advertiser, "order_id\no-1\n", date_from=date(2024, 5, 2), date_to=date(2024, 5, 1))
    assert refused.value.code == "invalid_date_range"
    assert ReconciliationRun.objects.count() == 0


# --- Another advertiser --------------------------------------------------------------------------


def test_another_advertisers_conversions_are_never_matched_nor_listed(advertiser, make):
    mine = make("shared-order", "10.00")
    other_offer = factories.OfferFactory()
    other_goal = factories.GoalFactory(offer=other_offer)
    theirs = factories.ConversionFactory(
        click=factories.ClickFactory(offer=other_offer, created_at=DAY),
        goal=other_goal,
        order_id="theirs-1",
        sale_amount=Decimal("3.00"),
        created_at=DAY,
    )
    theirs_same_order = factories.ConversionFactory(
        click=factories.ClickFactory(offer=other_offer, created_at=DAY),
        goal=other_goal,
        order_id="shared-order",
        sale_amount=Decimal("10.00"),
        created_at=DAY,
    )
    run = _run(
        advertiser,
        f"order_id,click_id,amount\ntheirs-1,,3.00\n,{theirs.click_id},3.00\nshared-order,,10.00\n",
        date_from=date(2024, 5, 1),
        date_to=date(2024, 5, 31),
    )
    assert _counts(run)["matched"] == 1
    assert _counts(run)["missing_in_network"] == 2
    assert _counts(run)["missing_in_advertiser"] == 0
    shown = {r.get("conversion_id") for r in run.report}
    assert theirs.pk not in shown
    assert theirs_same_order.pk not in shown
    assert mine.pk not in shown  # matched


# --- Parsing -------------------------------------------------------------------------------------


def test_aliases_semicolons_bom_and_crlf(advertiser, make):
    a = make("o-1", "12.50", PENDING)
    b = make("o-2", "3.00", APPROVED)
    c = make("o-3", "4.00", PENDING)
    text = (
        "\ufeffADV_SUB;Transaction ID;Sum;Status\r\n"
        f"o-1;{a.click_id};12.50;confirmed\r\n"
        f"o-2;{b.click_id};3;declined\r\n"
        f"o-3;{c.click_id};4.00;hold\r\n"
    )
    run = _run(advertiser, text)
    assert run.summary["columns"] == ["amount", "click_id", "order_id", "status"]
    assert _counts(run)["matched"] == 1
    assert [(r["order_id"], r["advertiser_status"]) for r in _rows(run, "status_mismatch")] == [
        ("o-1", "approved"),
        ("o-2", "rejected"),
    ]


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("order_id", "order_id"),
        ("adv_sub", "order_id"),
        ("order", "order_id"),
        ("transaction_order_id", "order_id"),
        ("click_id", "click_id"),
        ("transaction_id", "click_id"),
        ("clickid", "click_id"),
    ],
)
def test_id_column_aliases(header, column):
    parsed = reconciliation_csv_parse(content=f"{header},revenue\nabc,1.00\n".encode())
    row = parsed.rows[0]
    assert getattr(row, column) == "abc"
    assert row.amount == Decimal("1.00")


@pytest.mark.parametrize("header", ["amount", "sale_amount", "sum", "revenue"])
def test_amount_column_aliases_parse_to_decimal(header):
    parsed = reconciliation_csv_parse(content=f"order_id,{header}\nabc,0.1\n".encode())
    assert parsed.rows[0].amount == Decimal("0.1")
    assert type(parsed.rows[0].amount) is Decimal


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("approved", APPROVED),
        ("Approved", APPROVED),
        ("1", APPROVED),
        ("pending", PENDING),
        ("5", PENDING),
        ("rejected", REJECTED),
        ("3", REJECTED),
    ],
)
def test_status_aliases(raw, status):
    parsed = reconciliation_csv_parse(content=f"order_id,status\na,{raw}\n".encode())
    assert parsed.rows[0].status == status


def test_bad_rows_are_reported_with_their_line_and_the_rest_is_read(advertiser, make):
    make("o-1", "12.00")
    text = (
        "order_id;amount;status\n"
        "o-1;12.00;approved\n"
        "o-2;12,50;approved\n"
        "o-3;1e3;approved\n"
        "o-4;-1;approved\n"
        "o-5;1.00;maybe\n"
        ";1.00;approved\n"
        "\n"
        "o-1;12.00;approved\n"
        f"{'x' * 300};1.00;approved\n"
    )
    run = _run(advertiser, text)
    errors = [(r["line"], r["code"]) for r in _rows(run, "row_error")]
    assert errors == [
        (3, "invalid_amount"),
        (4, "invalid_amount"),
        (5, "invalid_amount"),
        (6, "invalid_status"),
        (7, "missing_id"),
        (9, "duplicate_row"),
        (10, "invalid_id"),
    ]
    assert _rows(run, "row_error")[5]["message"] == "the same ids as line 2"
    assert _counts(run)["row_error"] == 7
    assert _counts(run)["matched"] == 1
    assert run.summary["rows"] == 8


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_any_line_ending(newline):
    parsed = reconciliation_csv_parse(
        content=newline.join(["order_id;amount", "a;1.00", "b;2.00", ""]).encode()
    )
    assert [(row.line, row.order_id, row.amount) for row in parsed.rows] == [
        (2, "a", Decimal("1.00")),
        (3, "b", Decimal("2.00")),
    ]


def test_a_tab_separated_file_with_a_quoted_header():
    parsed = reconciliation_csv_parse(content=b'"Order ID"\t"Status"\n"a"\t"declined"\n')
    assert (parsed.rows[0].order_id, parsed.rows[0].status) == ("a", REJECTED)


def test_a_short_row_has_empty_cells_not_an_error():
    parsed = reconciliation_csv_parse(content=b"order_id,amount,status\nabc\n")
    assert parsed.errors == []
    assert (parsed.rows[0].amount, parsed.rows[0].status) == (None, None)


@pytest.mark.parametrize(
    ("content", "code", "http_status"),
    [
        (b"", "empty_file", 400),
        (b"\n\norder_id\n", "empty_file", 400),
        (b"amount,status\n1.00,approved\n", "missing_id_column", 400),
        ("order_id,amount\ncaf\u00e9,1\n".encode("latin-1"), "not_utf8", 400),
        (b"order_id\n\x00\x01\n", "not_csv", 400),
        (b"order_id\n" + b"x" * reconciliation.MAX_FILE_BYTES, "file_too_large", 413),
    ],
)
def test_file_level_problems_are_clear_errors(advertiser, content, code, http_status):
    with pytest.raises(ReconciliationError) as refused:
        reconciliation_run_create(
            advertiser_id=advertiser.pk, user_id=None, file_name="f.csv", content=content, now=NOW
        )
    assert (refused.value.code, refused.value.http_status) == (code, http_status)
    assert ReconciliationRun.objects.count() == 0


def test_too_many_rows(monkeypatch):
    monkeypatch.setattr(reconciliation, "MAX_ROWS", 3)
    reconciliation_csv_parse(content=b"order_id\na\nb\nc\n")
    with pytest.raises(ReconciliationError) as refused:
        reconciliation_csv_parse(content=b"order_id\na\nb\nc\nd\n")
    assert refused.value.code == "too_many_rows"


def test_broken_csv_quoting_is_a_clear_error(monkeypatch):
    with pytest.raises(ReconciliationError) as refused:
        reconciliation_csv_parse(content=b'order_id\n"abc\n' + b"x" * (200 * 1024))
    assert refused.value.code == "invalid_csv"


def test_long_lists_are_cut_but_counted(advertiser, make, monkeypatch):
    monkeypatch.setattr(reconciliation, "MAX_REPORTED_PER_CATEGORY", 2)
    for n in range(4):
        make(f"o-{n}", "1.00", PENDING)
    text = "order_id,status\n" + "".join(f"o-{n},approved\nz-{n},approved\n" for n in range(4))
    run = _run(advertiser, text)
    assert _counts(run)["missing_in_network"] == 4
    assert len(_rows(run, "missing_in_network")) == 2
    assert run.summary["not_listed"] == {"missing_in_network": 2}
    assert len(_rows(run, "status_mismatch")) == 4  # never cut: apply needs them all


# --- Apply ---------------------------------------------------------------------------------------


def test_apply_moves_statuses_through_the_status_service(advertiser, make, staff_user):
    to_reverse = make("o-1", "10.00", APPROVED)
    to_approve = make("o-2", "10.00", PENDING)
    to_reject = make("o-3", "10.00", PENDING)
    un_reject = make("o-4", "10.00", REJECTED)
    refused = make("o-5", "10.00", APPROVED)
    amount_only = make("o-6", "10.00", APPROVED)
    run = _run(
        advertiser,
        "order_id,amount,status\n"
        "o-1,10.00,rejected\no-2,10.00,approved\no-3,10.00,rejected\n"
        "o-4,10.00,approved\no-5,10.00,pending\no-6,99.00,approved\n",
    )
    later = NOW + timedelta(hours=1)

    result = reconciliation_apply(run_id=run.pk, user_id=staff_user.pk, now=later)

    assert (result.applied_now, result.changed, result.unchanged, result.refused) == (
        True,
        4,
        0,
        1,
    )
    statuses = dict(
        Conversion.objects.filter(
            pk__in=[c.pk for c in (to_reverse, to_approve, to_reject, un_reject, refused)]
        ).values_list("pk", "status")
    )
    assert statuses == {
        to_reverse.pk: REVERSED,
        to_approve.pk: APPROVED,
        to_reject.pk: REJECTED,
        un_reject.pk: APPROVED,
        refused.pk: APPROVED,
    }
    changes = list(
        ConversionStatusChange.objects.order_by("conversion_id").values_list(
            "conversion_id", "old_status", "new_status", "source", "user_id", "created_at"
        )
    )
    recon, user = StatusChangeSource.RECONCILIATION, staff_user.pk
    assert changes == [
        (to_reverse.pk, APPROVED, REVERSED, recon, user, later),
        (to_approve.pk, PENDING, APPROVED, recon, user, later),
        (to_reject.pk, PENDING, REJECTED, recon, user, later),
        (un_reject.pk, REJECTED, APPROVED, recon, user, later),
    ]
    assert ConversionStatusChange.objects.get(conversion=to_reverse).reason == (
        f"reconciliation {run.pk}, line 2"
    )
    # Amounts are reported, never changed.
    amount_only.refresh_from_db()
    assert (amount_only.sale_amount, amount_only.status) == (Decimal("10.0000"), APPROVED)

    run.refresh_from_db()
    assert (run.applied_at, run.applied_by_id) == (later, staff_user.pk)
    assert run.summary["applied"] == {"changed": 4, "unchanged": 0, "refused": 1}
    outcomes = {
        r["order_id"]: (r["apply_result"], r.get("apply_error"))
        for r in _rows(run, "status_mismatch")
    }
    assert outcomes == {
        "o-1": ("changed", None),
        "o-2": ("changed", None),
        "o-3": ("changed", None),
        "o-4": ("changed", None),
        "o-5": ("refused", "invalid_transition"),
    }
    assert "apply_result" not in _rows(run, "amount_mismatch")[0]


def test_apply_is_idempotent(advertiser, make, staff_user):
    conversion = make("o-1", "10.00", PENDING)
    run = _run(advertiser, "order_id,status\no-1,approved\n")
    queued_before = AccrualQueue.objects.filter(conversion_id=conversion.pk).count()
    first = reconciliation_apply(run_id=run.pk, user_id=staff_user.pk, now=NOW)
    queued_after_first = AccrualQueue.objects.filter(conversion_id=conversion.pk).count()
    other_user = factories.UserFactory(is_staff=True)

    second = reconciliation_apply(run_id=run.pk, user_id=other_user.pk, now=NOW + timedelta(days=1))

    # The ledger hears of the one move (the accrual queue), and only of that one.
    assert queued_after_first == queued_before + 1
    assert AccrualQueue.objects.filter(conversion_id=conversion.pk).count() == queued_after_first

    assert (first.applied_now, first.changed) == (True, 1)
    assert (second.applied_now, second.changed, second.unchanged, second.refused) == (
        False,
        1,
        0,
        0,
    )
    run.refresh_from_db()
    assert (run.applied_at, run.applied_by_id) == (NOW, staff_user.pk)
    assert ConversionStatusChange.objects.filter(conversion=conversion).count() == 1


def test_apply_after_the_status_changed_meanwhile_is_a_no_op_for_that_row(advertiser, make):
    conversion = make("o-1", "10.00", PENDING)
    run = _run(advertiser, "order_id,status\no-1,approved\n")
    Conversion.objects.filter(pk=conversion.pk).update(status=APPROVED)
    result = reconciliation_apply(run_id=run.pk, user_id=None, now=NOW)
    assert (result.changed, result.unchanged, result.refused) == (0, 1, 0)
    assert ConversionStatusChange.objects.count() == 0


def test_an_advertiser_applies_only_its_own_runs(advertiser, make):
    make("o-1", "10.00", PENDING)
    run = _run(advertiser, "order_id,status\no-1,approved\n")
    other = factories.AdvertiserFactory()
    with pytest.raises(ReconciliationError) as refused:
        reconciliation_apply(run_id=run.pk, user_id=None, now=NOW, advertiser_id=other.pk)
    assert (refused.value.code, refused.value.http_status) == ("reconciliation_not_found", 404)
    run.refresh_from_db()
    assert run.applied_at is None
    assert ConversionStatusChange.objects.count() == 0


def test_an_advertiser_applying_its_own_run_is_held_to_its_scrub_window(advertiser, make):
    advertiser.scrub_window_days = 5
    advertiser.save()
    old = make("o-old", "10.00", APPROVED, created_at=NOW - timedelta(days=6))
    recent = make("o-new", "10.00", APPROVED, created_at=NOW - timedelta(days=4))
    pending_old = make("o-p", "10.00", PENDING, created_at=NOW - timedelta(days=6))
    run = _run(advertiser, "order_id,status\no-old,rejected\no-new,rejected\no-p,approved\n")

    result = reconciliation_apply(run_id=run.pk, user_id=None, now=NOW, advertiser_id=advertiser.pk)

    assert (result.changed, result.refused) == (2, 1)
    statuses = dict(Conversion.objects.values_list("pk", "status"))
    assert statuses == {old.pk: APPROVED, recent.pk: REVERSED, pending_old.pk: APPROVED}
    run.refresh_from_db()
    refused = [r for r in _rows(run, "status_mismatch") if r["apply_result"] == "refused"]
    assert [(r["order_id"], r["apply_error"]) for r in refused] == [
        ("o-old", "scrub_window_closed")
    ]


def test_staff_applying_is_not_held_to_the_scrub_window(advertiser, make, staff_user):
    advertiser.scrub_window_days = 0
    advertiser.save()
    old = make("o-old", "10.00", APPROVED, created_at=NOW - timedelta(days=90))
    run = _run(advertiser, "order_id,status\no-old,rejected\n")
    reconciliation_apply(run_id=run.pk, user_id=staff_user.pk, now=NOW)
    old.refresh_from_db()
    assert old.status == REVERSED


# --- Hostile input ------------------------------------------------------------------------------

_CSV_ALPHABET = st.sampled_from(
    list('order_id,click_id;amount\tstatus|"\r\n 0123456789.-,eE\ufeff\x00abcé')
)


@settings(max_examples=300, deadline=None)
@given(
    st.text(_CSV_ALPHABET, max_size=200)
    | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
)
def test_any_file_is_a_report_or_a_clear_error(text):
    try:
        parsed = reconciliation_csv_parse(content=text.encode("utf-8"))
    except ReconciliationError as error:
        assert error.http_status in (400, 413)
        return
    for row in parsed.rows:
        assert row.order_id or row.click_id
        assert row.amount is None or type(row.amount) is Decimal


def test_unpaired_rows_take_the_advertisers_currency_when_it_has_one(advertiser, offer):
    factories.OfferFactory(advertiser=advertiser, currency=offer.currency)
    run = _run(advertiser, "order_id,amount\nnope,1.00\n")
    assert run.summary["categories"]["missing_in_network"]["advertiser_amount"] == {"USD": "1.00"}
    factories.OfferFactory(advertiser=advertiser, currency="EUR")
    run = _run(advertiser, "order_id,amount\nnope,1.00\n")
    assert run.summary["categories"]["missing_in_network"]["advertiser_amount"] == {"": "1.00"}
    run = _run(advertiser, "order_id,amount,currency\nnope,1.00,eur\n")
    assert run.summary["categories"]["missing_in_network"]["advertiser_amount"] == {"EUR": "1.00"}


def test_the_same_number_in_another_currency_is_an_amount_mismatch(advertiser, make):
    make("o-1", "10.00")
    run = _run(advertiser, "order_id,amount,currency\no-1,10.00,EUR\n")
    [row] = _rows(run, "amount_mismatch")
    assert (row["currency"], row["advertiser_currency"]) == ("USD", "EUR")
