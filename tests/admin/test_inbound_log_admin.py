"""The postback debugger in the admin (InboundPostbackLogAdmin): staff see every call; an
advertiser user sees its own advertiser's calls only; nobody edits the log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from apps.conversions.models import Conversion, InboundPostbackLog
from tests import factories

from .conftest import AdminWorld

TOKEN = factories.ADVERTISER_TOKEN
CHANGELIST = "admin:conversions_inboundpostbacklog_changelist"


def _change_url(log: InboundPostbackLog) -> str:
    return reverse("admin:conversions_inboundpostbacklog_change", args=[log.pk])


@dataclass
class Calls:
    x_accepted: InboundPostbackLog
    x_bad_token: InboundPostbackLog
    y_accepted: InboundPostbackLog
    unknown: InboundPostbackLog


@pytest.fixture
def calls(admin_world: AdminWorld) -> Calls:
    """Real postbacks through /postback: an accepted and a refused one for advertiser X, an
    accepted one for Y, and one whose click nobody knows."""
    w = admin_world
    shopper = Client()
    x_click = factories.ClickFactory(offer=w.offer_x)
    y_click = factories.ClickFactory(offer=w.offer_y)
    shopper.post(
        "/postback",
        json.dumps({"click_id": x_click.click_id, "order_id": "X-1", "token": TOKEN}),
        content_type="application/json",
        headers={"User-Agent": "X-CRM/1.0"},
    )
    shopper.get("/postback", {"click_id": x_click.click_id, "order_id": "X-2", "token": "wrong"})
    shopper.get("/aff_lsr", {"transaction_id": y_click.click_id, "adv_sub": "Y-1", "token": TOKEN})
    shopper.get("/postback", {"click_id": "nobody-knows-me", "token": TOKEN})
    logs = list(InboundPostbackLog.objects.order_by("id"))
    assert [(log.result, log.reason) for log in logs] == [
        ("accepted", ""),
        ("rejected", "bad_token"),
        ("accepted", ""),
        ("rejected", "unknown_click"),
    ]
    return Calls(*logs)


def _ids(client: Client, query: dict[str, str] | None = None) -> list[int]:
    response = client.get(reverse(CHANGELIST), query or {})
    assert response.status_code == 200
    return sorted(log.pk for log in response.context["cl"].result_list)


# --- who sees what --------------------------------------------------------------------------------


def test_staff_see_every_call(admin_world: AdminWorld, calls: Calls):
    assert _ids(admin_world.super_client) == sorted(
        [calls.x_accepted.pk, calls.x_bad_token.pk, calls.y_accepted.pk, calls.unknown.pk]
    )


def test_an_advertiser_user_sees_its_own_calls_only(admin_world: AdminWorld, calls: Calls):
    w = admin_world
    assert _ids(w.x_client) == sorted([calls.x_accepted.pk, calls.x_bad_token.pk])
    body = w.x_client.get(reverse(CHANGELIST)).content.decode()
    assert "Advertiser Y" not in body
    assert "Y-1" not in body
    assert "nobody-knows-me" not in body


@pytest.mark.parametrize("which", ["y_accepted", "unknown"])
def test_an_advertiser_user_cannot_open_anyone_elses_call(
    admin_world: AdminWorld, calls: Calls, which: str
):
    response = admin_world.x_client.get(_change_url(getattr(calls, which)))
    assert response.status_code == 302  # the admin's "does not exist" answer
    assert response["Location"] == reverse("admin:index")


def test_the_debugger_is_in_the_advertiser_users_admin_index(admin_world: AdminWorld):
    body = admin_world.x_client.get(reverse("admin:index")).content.decode()
    assert reverse(CHANGELIST) in body


def test_the_advertiser_filter_lists_only_its_own_advertiser(admin_world: AdminWorld, calls):
    w = admin_world
    response = w.x_client.get(reverse(CHANGELIST))
    advertiser_filter = next(
        spec for spec in response.context["cl"].filter_specs if spec.title == "advertiser"
    )
    assert [pk for pk, _name in advertiser_filter.lookup_choices] == [w.adv_x.pk]
    # A guessed filter on another advertiser finds nothing.
    assert _ids(w.x_client, {"advertiser__id__exact": str(w.adv_y.pk)}) == []


# --- search and filters ---------------------------------------------------------------------------


def test_search_by_click_id_order_id_advertiser_name_and_conversion(
    admin_world: AdminWorld, calls: Calls
):
    staff = admin_world.super_client
    assert _ids(staff, {"q": calls.y_accepted.click_id}) == [calls.y_accepted.pk]
    assert _ids(staff, {"q": "X-2"}) == [calls.x_bad_token.pk]
    assert _ids(staff, {"q": "Advertiser Y"}) == [calls.y_accepted.pk]
    assert _ids(staff, {"q": str(calls.x_accepted.conversion_id)}) == [calls.x_accepted.pk]
    # An advertiser user searching for another advertiser finds nothing.
    assert _ids(admin_world.x_client, {"q": "Advertiser Y"}) == []
    assert _ids(admin_world.x_client, {"q": calls.y_accepted.click_id}) == []
    # Digits int() refuses ("²") or a bigint cannot hold: a search that finds nothing, not a 500.
    assert _ids(staff, {"q": "\u00b2"}) == []
    assert _ids(staff, {"q": "9" * 40}) == []


def test_filters_by_result_reason_advertiser_and_date(admin_world: AdminWorld, calls: Calls):
    staff = admin_world.super_client
    assert _ids(staff, {"result__exact": "rejected"}) == sorted(
        [calls.x_bad_token.pk, calls.unknown.pk]
    )
    assert _ids(staff, {"reason": "unknown_click"}) == [calls.unknown.pk]
    assert _ids(staff, {"advertiser__id__exact": str(admin_world.adv_x.pk)}) == sorted(
        [calls.x_accepted.pk, calls.x_bad_token.pk]
    )
    day = calls.x_accepted.created_at.astimezone(UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
    assert len(_ids(staff, {"created_at__gte": start, "created_at__lt": end})) == 4
    assert _ids(staff, {"created_at__gte": end}) == []
    assert len(_ids(staff, {"created_at__year": str(day.year)})) == 4  # the date hierarchy


# --- the detail page: the raw request and the decision --------------------------------------------


def test_detail_shows_the_raw_request_and_the_decision(admin_world: AdminWorld, calls: Calls):
    log = calls.x_accepted
    conversion = Conversion.objects.get(pk=log.conversion_id)
    response = admin_world.super_client.get(_change_url(log))
    assert response.status_code == 200
    body = response.content.decode()
    assert "POST" in body
    assert "/postback" in body
    assert "user-agent: X-CRM/1.0" in body
    assert "&quot;order_id&quot;: &quot;X-1&quot;" in body  # the body, escaped
    assert "&quot;token&quot;: &quot;***&quot;" in body
    assert TOKEN not in body
    change = reverse("admin:conversions_conversion_change", args=[conversion.pk])
    assert f'<a href="{change}">#{conversion.pk}</a>' in body
    assert "Recorded." in body


def test_detail_explains_a_refusal(admin_world: AdminWorld, calls: Calls):
    body = admin_world.x_client.get(_change_url(calls.x_bad_token)).content.decode()
    assert "bad_token" in body
    assert "The postback token is missing or wrong" in body
    assert TOKEN not in body


def test_an_advertiser_user_follows_the_link_to_its_conversion(admin_world: AdminWorld, calls):
    w = admin_world
    response = w.x_client.get(
        reverse("admin:conversions_conversion_change", args=[calls.x_accepted.conversion_id])
    )
    assert response.status_code == 200


def test_what_was_sent_is_escaped(admin_world: AdminWorld):
    Client().post(
        "/postback",
        "<script>alert(1)</script>",
        content_type="text/plain",
        headers={"User-Agent": "<img src=x onerror=alert(2)>"},
    )
    log = InboundPostbackLog.objects.get()
    body = admin_world.super_client.get(_change_url(log)).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body


# --- read-only ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["super_client", "x_client"])
def test_nobody_adds_changes_or_deletes_log_rows(admin_world: AdminWorld, calls: Calls, who):
    client = getattr(admin_world, who)
    log = calls.x_bad_token
    assert client.get(reverse("admin:conversions_inboundpostbacklog_add")).status_code == 403
    assert client.post(_change_url(log), {"reason": "fixed"}).status_code == 403
    delete = reverse("admin:conversions_inboundpostbacklog_delete", args=[log.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    response = client.post(
        reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": [log.pk]}
    )
    assert response.status_code in (200, 302)
    log.refresh_from_db()
    assert log.reason == "bad_token"
    assert InboundPostbackLog.objects.count() == 4
