"""Reconciliation in the admin: staff upload for any advertiser, an advertiser user for itself only;
each sees only the runs it may; the run page applies statuses with a CSRF-protected POST."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.conversions import reconciliation
from apps.conversions.models import ConversionStatusChange, ReconciliationRun
from apps.conversions.reconciliation import reconciliation_run_create
from apps.offers.models import ConversionStatus

from .conftest import AdminWorld

ADD = reverse("admin:conversions_reconciliationrun_add")
CHANGELIST = reverse("admin:conversions_reconciliationrun_changelist")


def _detail(run_id: int) -> str:
    return reverse("admin:conversions_reconciliationrun_change", args=[run_id])


def _apply(run_id: int) -> str:
    return reverse("admin:conversions_reconciliationrun_apply", args=[run_id])


def _file(content: bytes, name: str = "adv.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, "text/csv")


def _both_files(w: AdminWorld) -> bytes:
    """X's conversion, called rejected by the advertiser; and Y's, which X must never match."""
    return (
        f"order_id,amount,status\n{w.conv_x.order_id},4.00,rejected\n{w.conv_y.order_id},1,approved\n"
    ).encode()


def _run_for(w: AdminWorld, advertiser, content: bytes) -> ReconciliationRun:
    return reconciliation_run_create(
        advertiser_id=advertiser.pk,
        user_id=None,
        file_name="f.csv",
        content=content,
        now=timezone.now(),
    )


def test_staff_pick_the_advertiser(admin_world: AdminWorld):
    w = admin_world
    page = w.super_client.get(ADD)
    assert page.status_code == 200
    assert 'name="advertiser"' in page.content.decode()

    response = w.super_client.post(
        ADD, {"advertiser": w.adv_y.pk, "file": _file(_both_files(w)), "date_from": ""}
    )

    run = ReconciliationRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == _detail(run.pk)
    assert run.advertiser_id == w.adv_y.pk
    assert run.file_name == "adv.csv"
    counts = {name: c["count"] for name, c in run.summary["categories"].items()}
    assert (counts["status_mismatch"], counts["missing_in_network"]) == (0, 1)
    assert counts["matched"] + counts["amount_mismatch"] == 1
    detail = w.super_client.get(_detail(run.pk))
    assert detail.status_code == 200
    body = detail.content.decode()
    assert "Advertiser Y" in body
    assert 'id="reconciliation-summary"' in body


def test_staff_must_pick_an_advertiser(admin_world: AdminWorld):
    response = admin_world.super_client.post(ADD, {"file": _file(b"order_id\na\n")})
    assert response.status_code == 200
    assert response.context["form"].errors["advertiser"]
    assert ReconciliationRun.objects.count() == 0


def test_advertiser_user_uploads_for_itself_only(admin_world: AdminWorld):
    w = admin_world
    page = w.x_client.get(ADD)
    assert page.status_code == 200
    assert 'name="advertiser"' not in page.content.decode()
    assert "Advertiser Y" not in page.content.decode()

    response = w.x_client.post(ADD, {"advertiser": w.adv_y.pk, "file": _file(_both_files(w))})

    run = ReconciliationRun.objects.get()
    assert response.status_code == 302
    assert (run.advertiser_id, run.created_by_id) == (w.adv_x.pk, w.x_user.pk)
    status_rows = [r for r in run.report if r["category"] == "status_mismatch"]
    assert [r["conversion_id"] for r in status_rows] == [w.conv_x.pk]
    missing = [r for r in run.report if r["category"] == "missing_in_network"]
    assert [r["order_id"] for r in missing] == [w.conv_y.order_id]
    shown = {r.get("conversion_id") for r in run.report}
    assert w.conv_y.pk not in shown

    body = w.x_client.get(_detail(run.pk)).content.decode()
    assert "Advertiser Y" not in body
    assert reverse("admin:conversions_conversion_change", args=[w.conv_y.pk]) not in body
    assert reverse("admin:conversions_conversion_change", args=[w.conv_x.pk]) in body


def test_advertiser_user_sees_only_its_own_runs(admin_world: AdminWorld):
    w = admin_world
    x_run = _run_for(w, w.adv_x, _both_files(w))
    y_run = _run_for(w, w.adv_y, _both_files(w))

    changelist = w.x_client.get(CHANGELIST)
    assert changelist.status_code == 200
    assert [run.pk for run in changelist.context["cl"].result_list] == [x_run.pk]
    assert "Advertiser Y" not in changelist.content.decode()
    assert w.x_client.get(_detail(x_run.pk)).status_code == 200
    assert w.x_client.get(_detail(y_run.pk)).status_code == 404

    response = w.x_client.post(_apply(y_run.pk))
    assert response.status_code == 404
    y_run.refresh_from_db()
    assert y_run.applied_at is None
    assert ConversionStatusChange.objects.count() == 0

    staff_list = w.super_client.get(CHANGELIST)
    assert sorted(run.pk for run in staff_list.context["cl"].result_list) == sorted(
        [x_run.pk, y_run.pk]
    )


def test_apply_button_applies_once(admin_world: AdminWorld):
    w = admin_world
    w.x_client.post(ADD, {"file": _file(_both_files(w))})
    run = ReconciliationRun.objects.get()
    detail = w.x_client.get(_detail(run.pk)).content.decode()
    assert "Apply advertiser statuses" in detail
    assert f'action="{_apply(run.pk)}"' in detail

    assert w.x_client.get(_apply(run.pk)).status_code == 405  # POST only
    response = w.x_client.post(_apply(run.pk), follow=True)

    assert response.status_code == 200
    assert "1 changed, 0 already so, 0 refused" in response.content.decode()
    w.conv_x.refresh_from_db()
    assert w.conv_x.status == ConversionStatus.REVERSED
    change = ConversionStatusChange.objects.get()
    assert (change.conversion_id, change.source, change.user_id) == (
        w.conv_x.pk,
        "reconciliation",
        w.x_user.pk,
    )
    run.refresh_from_db()
    assert run.applied_by_id == w.x_user.pk
    applied_at = run.applied_at
    assert "Apply advertiser statuses" not in response.content.decode()

    again = w.x_client.post(_apply(run.pk), follow=True)
    assert "already applied" in again.content.decode()
    run.refresh_from_db()
    assert run.applied_at == applied_at
    assert ConversionStatusChange.objects.count() == 1


def test_apply_needs_the_csrf_token(admin_world: AdminWorld):
    w = admin_world
    run = _run_for(w, w.adv_x, _both_files(w))
    client = Client(enforce_csrf_checks=True)
    client.force_login(w.x_user)
    assert client.post(_apply(run.pk)).status_code == 403
    run.refresh_from_db()
    assert run.applied_at is None


def test_bad_files_are_form_errors(admin_world: AdminWorld):
    w = admin_world
    not_utf8 = w.x_client.post(ADD, {"file": _file("order_id\ncaf\u00e9\n".encode("latin-1"))})
    assert not_utf8.status_code == 200
    assert "not UTF-8" in str(not_utf8.context["form"].errors["file"])

    no_id = w.x_client.post(ADD, {"file": _file(b"amount\n1.00\n")})
    assert "order id or click id column" in str(no_id.context["form"].errors["file"])

    bad_dates = w.x_client.post(
        ADD, {"file": _file(b"order_id\na\n"), "date_from": "2024-05-02", "date_to": "2024-05-01"}
    )
    assert bad_dates.context["form"].errors["date_from"]

    over = b"order_id\n" + b"a" * reconciliation.MAX_FILE_BYTES
    too_large = w.x_client.post(ADD, {"file": _file(over)})
    assert too_large.status_code == 200
    assert "larger than 5 MB" in too_large.content.decode()
    far_over = w.x_client.post(ADD, {"file": _file(over + b"a" * (256 * 1024))})
    assert far_over.status_code == 200
    assert far_over.context["too_large"] is True
    assert ReconciliationRun.objects.count() == 0


def test_bad_rows_show_on_the_run_page(admin_world: AdminWorld):
    w = admin_world
    w.x_client.post(ADD, {"file": _file(b"order_id;amount\nabc;12,50\n")})
    run = ReconciliationRun.objects.get()
    body = w.x_client.get(_detail(run.pk)).content.decode()
    assert "invalid_amount" in body
    assert "Row error (1)" in body


def test_advertiser_user_cannot_delete_runs(admin_world: AdminWorld):
    w = admin_world
    run = _run_for(w, w.adv_x, _both_files(w))
    delete = reverse("admin:conversions_reconciliationrun_delete", args=[run.pk])
    assert w.x_client.post(delete, {"post": "yes"}).status_code == 403
    assert ReconciliationRun.objects.filter(pk=run.pk).exists()
