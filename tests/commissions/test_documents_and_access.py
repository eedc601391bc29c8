"""Statement CSV / invoice, the balance and statement API, and the staff admin actions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client

from apps.commissions.models import EntryKind, LedgerEntry, Statement
from apps.commissions.services import commission_accrue, statements_build
from tests import factories
from tests.commissions.conftest import T0, at

pytestmark = pytest.mark.django_db
D = dt.date


@pytest.fixture
def statement(affiliate, convert):
    affiliate.billing_period = "weekly"
    affiliate.minimum_payout = Decimal("1")
    affiliate.save()
    first = convert(payout=Decimal("20.00"), created_at=T0)
    convert(payout=Decimal("2.25"), created_at=T0)
    commission_accrue(now=T0)
    statements_build(date_from=D(2026, 3, 8), date_to=D(2026, 3, 8), now=at(2026, 3, 9))
    statement = Statement.objects.get()
    statement.first_conversion = first
    return statement


def test_csv_export(statement, affiliate_client):
    response = affiliate_client.get(f"/api/v1/affiliate/statements/{statement.pk}/csv/")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == (
        f'attachment; filename="statement-{statement.pk}.csv"'
    )
    lines = response.content.decode().splitlines()
    assert lines[0] == (
        "entry_id,kind,created_at,available_at,conversion_id,offer,goal,memo,amount,currency"
    )
    entries = list(LedgerEntry.objects.order_by("id"))
    conversion = statement.first_conversion
    assert lines[1].split(",")[:2] == [str(entries[0].pk), "commission"]
    assert lines[1].split(",")[4:] == [
        str(conversion.pk),
        conversion.offer.name,
        "lead",
        f"conversion {conversion.pk}",
        "20.00",
        "USD",
    ]
    assert lines[2].endswith(",2.25,USD")
    assert lines[3] == "total,,,,,,,,22.25,USD"
    assert len(lines) == 4


def test_invoice_page_prints(statement, affiliate_client):
    response = affiliate_client.get(f"/api/v1/affiliate/statements/{statement.pk}/invoice/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert f"Commission statement #{statement.pk}" in html
    assert "2026-03-02 to 2026-03-08" in html
    assert '<td class="amount">22.25</td>' in html
    assert "@media print" in html


def test_statement_list_and_detail(statement, affiliate_client):
    listing = affiliate_client.get("/api/v1/affiliate/statements/").json()
    assert listing["count"] == 1
    assert [(s["id"], s["total"], s["status"]) for s in listing["results"]] == [
        (statement.pk, "22.25", "draft")
    ]
    detail = affiliate_client.get(f"/api/v1/affiliate/statements/{statement.pk}/").json()
    assert (detail["period_start"], detail["period_end"], detail["currency"]) == (
        "2026-03-02",
        "2026-03-08",
        "USD",
    )


@pytest.mark.parametrize("suffix", ["", "csv/", "invoice/"])
def test_another_affiliates_statement_is_not_found(statement, suffix):
    stranger = factories.AffiliateFactory()
    from tests.conftest import _client_for

    client = _client_for(factories.UserFactory(affiliate=stranger))
    response = client.get(f"/api/v1/affiliate/statements/{statement.pk}/{suffix}")
    assert response.status_code == 404
    assert client.get("/api/v1/affiliate/statements/").json()["results"] == []


@pytest.mark.parametrize("suffix", ["", "csv/", "invoice/"])
def test_staff_and_anonymous_cannot_use_the_affiliate_statement_api(
    statement, suffix, staff_client, client
):
    url = f"/api/v1/affiliate/statements/{statement.pk}/{suffix}"
    assert staff_client.get(url).status_code == 403
    assert client.get(url).status_code in (401, 403)


def test_balance_detail(affiliate, convert, affiliate_client, offer):
    offer.hold_days = 30
    offer.save()
    convert(payout=Decimal("2.50"))
    commission_accrue()
    LedgerEntry.objects.create(
        affiliate=affiliate, kind=EntryKind.ADJUSTMENT, amount=Decimal("1.00"), currency="USD"
    )
    factories.ConversionFactory(payout=Decimal("100.00"))  # someone else's
    commission_accrue()
    response = affiliate_client.get("/api/v1/affiliate/balance/detail/")
    assert response.status_code == 200
    assert response.json() == {
        "balances": [
            {
                "currency": "USD",
                "pending": "2.50",
                "available": "1.00",
                "paid": "0",
                "total": "3.50",
            }
        ]
    }


# --- staff admin ----------------------------------------------------------------------------------


@pytest.fixture
def admin_client(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


def test_staff_takes_a_statement_to_paid_in_the_admin(statement, admin_client, staff_user):
    changelist = "/admin/commissions/statement/"
    assert admin_client.get(changelist).status_code == 200
    page = admin_client.get(f"{changelist}{statement.pk}/change/")
    assert page.status_code == 200

    def act(action):
        return admin_client.post(
            changelist, {"action": action, "_selected_action": [statement.pk]}, follow=True
        )

    act("mark_paid")  # not approved yet: refused, nothing written
    assert not LedgerEntry.objects.filter(kind=EntryKind.PAYOUT).exists()
    assert act("approve").status_code == 200
    act("mark_paid")
    act("mark_paid")  # twice: still one payout
    statement.refresh_from_db()
    assert (statement.status, statement.approved_by, statement.paid_by) == (
        "paid",
        staff_user,
        staff_user,
    )
    assert list(LedgerEntry.objects.filter(kind=EntryKind.PAYOUT).values_list("amount")) == [
        (Decimal("-22.25"),)
    ]

    csv = admin_client.get(f"{changelist}{statement.pk}/csv/")
    assert csv.status_code == 200
    assert csv.content.decode().splitlines()[-1] == "total,,,,,,,,22.25,USD"
    invoice = admin_client.get(f"{changelist}{statement.pk}/invoice/")
    assert invoice.status_code == 200
    assert "Paid" in invoice.content.decode()


def test_admin_documents_need_staff(statement, client):
    url = f"/admin/commissions/statement/{statement.pk}/csv/"
    assert client.get(url).status_code == 302  # to the login page
    affiliate_user = factories.UserFactory()
    client.force_login(affiliate_user)
    assert client.get(url).status_code == 302
