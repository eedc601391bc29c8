"""The reconciliation API: who may upload for whom, who sees which runs, apply, and bad files as
4xx with a stable code. Advertisers X and Y from the shared world: X never sees Y's data."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.conversions import reconciliation
from apps.conversions.models import ConversionStatusChange, ReconciliationRun
from apps.offers.models import ConversionStatus

from .conftest import World

URL = "/api/v1/advertiser/reconciliations/"


def _upload(client, content: bytes, name: str = "adv.csv", **fields: object):
    return client.post(
        URL, {"file": SimpleUploadedFile(name, content, "text/csv"), **fields}, format="multipart"
    )


def _x_file(world: World) -> bytes:
    # a1 (X, approved) agrees; b2 (X, rejected) the advertiser calls approved; a2 and b1 are Y's.
    return (
        "order_id,status\n"
        "order-a1,approved\n"
        "order-b2,approved\n"
        "order-a2,pending\n"
        f"order-b1,{ConversionStatus.APPROVED}\n"
    ).encode()


def _error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["code"] == code


def test_advertiser_uploads_for_itself_and_never_sees_another_advertisers_conversions(world):
    response = _upload(
        world.client_x,
        _x_file(world),
        date_from="2024-05-01",
        date_to="2024-05-31",
        advertiser_id=world.adv_y.pk,  # ignored: an advertiser uploads for itself
    )

    assert response.status_code == 201, response.content
    body = response.json()
    run = ReconciliationRun.objects.get()
    assert body["id"] == run.pk
    assert body["advertiser_id"] == world.adv_x.pk
    assert (body["file_name"], body["date_from"], body["date_to"]) == (
        "adv.csv",
        "2024-05-01",
        "2024-05-31",
    )
    assert body["applied_at"] is None
    counts = {name: c["count"] for name, c in body["summary"]["categories"].items()}
    assert counts == {
        "matched": 1,
        "missing_in_network": 2,  # Y's orders are not X's
        "missing_in_advertiser": 0,
        "amount_mismatch": 0,
        "status_mismatch": 1,
        "row_error": 0,
    }
    shown = {row.get("conversion_id") for row in body["report"]}
    assert shown == {None, world.conversions["b2"].pk}
    assert world.conversions["a2"].pk not in shown
    assert world.conversions["b1"].pk not in shown
    assert "Advertiser Y" not in response.content.decode()


def test_staff_upload_names_the_advertiser(world):
    _error(_upload(world.client_staff, _x_file(world)), 400, "advertiser_required")
    _error(
        _upload(world.client_staff, _x_file(world), advertiser_id=999999), 400, "unknown_advertiser"
    )
    response = _upload(world.client_staff, _x_file(world), advertiser_id=world.adv_y.pk)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["advertiser_id"] == world.adv_y.pk
    counts = {name: c["count"] for name, c in body["summary"]["categories"].items()}
    assert (counts["matched"], counts["status_mismatch"], counts["missing_in_network"]) == (
        2,  # a2 pending, b1 approved: as the file says
        0,
        2,  # X's orders are not Y's
    )
    assert {row.get("conversion_id") for row in body["report"]} == {None}


def test_affiliates_may_not_reconcile(world):
    _error(_upload(world.client_a, _x_file(world)), 403, "permission_denied")
    _error(world.client_a.get(URL), 403, "permission_denied")


def test_runs_are_listed_and_shown_to_their_advertiser_and_staff_only(world):
    x_run = _upload(world.client_x, _x_file(world)).json()["id"]
    y_run = _upload(world.client_y, _x_file(world)).json()["id"]

    def ids(client, query: str = "") -> list[int]:
        response = client.get(URL + query)
        assert response.status_code == 200, response.content
        assert "report" not in response.json()["results"][0]
        return [row["id"] for row in response.json()["results"]]

    assert ids(world.client_x) == [x_run]
    assert ids(world.client_y) == [y_run]
    assert ids(world.client_staff) == [y_run, x_run]
    assert ids(world.client_staff, f"?advertiser_id={world.adv_x.pk}") == [x_run]
    for bad in ("x", "\u00b2", "9" * 40):  # "²" passes str.isdigit(); 40 digits overflow
        _error(world.client_staff.get(URL, {"advertiser_id": bad}), 400, "invalid_filter")

    assert world.client_x.get(f"{URL}{x_run}/").json()["id"] == x_run
    assert world.client_staff.get(f"{URL}{x_run}/").status_code == 200
    _error(world.client_y.get(f"{URL}{x_run}/"), 404, "not_found")
    _error(world.client_a.get(f"{URL}{x_run}/"), 403, "permission_denied")


def test_another_advertisers_filter_shows_nothing_of_theirs(world):
    _upload(world.client_x, _x_file(world))
    response = world.client_y.get(f"{URL}?advertiser_id={world.adv_x.pk}")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_apply_is_scoped_and_idempotent(world):
    run_id = _upload(world.client_x, _x_file(world)).json()["id"]
    b2 = world.conversions["b2"]

    _error(world.client_y.post(f"{URL}{run_id}/apply/"), 404, "reconciliation_not_found")
    _error(world.client_a.post(f"{URL}{run_id}/apply/"), 403, "permission_denied")
    assert ConversionStatusChange.objects.count() == 0

    first = world.client_x.post(f"{URL}{run_id}/apply/")
    assert first.status_code == 200, first.content
    body = first.json()
    assert (body["applied_now"], body["changed"], body["unchanged"], body["refused"]) == (
        True,
        1,
        0,
        0,
    )
    assert body["run"]["applied_at"] is not None
    b2.refresh_from_db()
    assert b2.status == ConversionStatus.APPROVED
    change = ConversionStatusChange.objects.get()
    assert (change.conversion_id, change.old_status, change.new_status, change.source) == (
        b2.pk,
        "rejected",
        "approved",
        "reconciliation",
    )

    second = world.client_staff.post(f"{URL}{run_id}/apply/")
    assert second.status_code == 200
    assert second.json()["applied_now"] is False
    assert second.json()["run"]["applied_at"] == body["run"]["applied_at"]
    assert ConversionStatusChange.objects.count() == 1

    _error(world.client_x.post(f"{URL}999999/apply/"), 404, "reconciliation_not_found")


def test_bad_files_are_4xx_with_a_code(world):
    _error(_upload(world.client_x, "order_id\ncaf\u00e9\n".encode("latin-1")), 400, "not_utf8")
    _error(_upload(world.client_x, b"amount\n1.00\n"), 400, "missing_id_column")
    _error(_upload(world.client_x, b""), 400, "invalid")  # DRF: an empty file is no file
    _error(world.client_x.post(URL, {}, format="multipart"), 400, "invalid")
    _error(_upload(world.client_x, b"order_id\na\n", date_from="yesterday"), 400, "invalid")
    _error(
        _upload(world.client_x, b"order_id\na\n", date_from="2024-05-02", date_to="2024-05-01"),
        400,
        "invalid_date_range",
    )
    just_over = b"order_id\n" + b"a" * reconciliation.MAX_FILE_BYTES
    _error(_upload(world.client_x, just_over), 413, "file_too_large")
    far_over = just_over + b"a" * (256 * 1024)
    _error(_upload(world.client_x, far_over), 413, "file_too_large")
    assert ReconciliationRun.objects.count() == 0


def test_bad_rows_are_reported_not_refused(world):
    response = _upload(world.client_x, b"order_id;amount;status\norder-a1;1,50;approved\n;1;x\n")
    assert response.status_code == 201, response.content
    errors = [(r["line"], r["code"]) for r in response.json()["report"]]
    assert errors == [(2, "invalid_amount"), (3, "missing_id")]
