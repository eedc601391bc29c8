"""GET postbacks through the production server: granian running config.wsgi:application, whose
fast path answers them before Django's middleware, over real HTTP, on the test database."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection

from apps.commissions.models import LedgerEntry
from apps.commissions.services import commission_accrue_queued
from apps.conversions.models import Conversion, InboundPostbackLog
from tests import factories

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def test_fifty_identical_postbacks_at_once_make_one_conversion_and_one_commission(server):
    goal = factories.GoalFactory(code="lead")
    click = factories.ClickFactory(offer=goal.offer)
    params = {"click_id": click.click_id, "order_id": "same", "token": factories.ADVERTISER_TOKEN}

    def fire(_: int) -> tuple[int, dict]:
        response = requests.get(f"{server}/postback", params=params, timeout=30)
        assert response.headers["Content-Type"] == "application/json"
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(fire, range(50)))

    conversion = Conversion.objects.get()
    assert {status for status, _ in answers} == {200}
    assert sorted(a["result"] for _, a in answers) == ["accepted"] + ["duplicate"] * 49
    assert {a["conversion_id"] for _, a in answers} == {conversion.pk}
    logged = InboundPostbackLog.objects.filter(click_id=click.click_id)
    assert logged.count() == 50
    assert logged.filter(result="accepted").get().conversion_id == conversion.pk

    commission_accrue_queued()
    commission_accrue_queued()  # a second run adds nothing
    assert list(LedgerEntry.objects.values_list("conversion_id", "kind", "amount")) == [
        (conversion.pk, "commission", conversion.payout)
    ]


def test_refusals_are_json_with_a_reason_and_logged(server):
    goal = factories.GoalFactory(code="lead")
    click = factories.ClickFactory(offer=goal.offer)
    InboundPostbackLog.objects.all().delete()  # the server's start-up probe
    cases = [
        ({"click_id": click.click_id, "token": "wrong"}, 403, "bad_token"),
        ({"click_id": "nope", "token": factories.ADVERTISER_TOKEN}, 404, "unknown_click"),
        ({"token": factories.ADVERTISER_TOKEN}, 400, "missing_click_id"),
        (
            {"click_id": click.click_id, "amount": "1e400", "token": factories.ADVERTISER_TOKEN},
            400,
            "invalid_amount",
        ),
        ({f"p{n}": "x" for n in range(2000)}, 400, "malformed_request"),
    ]
    for params, status, reason in cases:
        response = requests.get(f"{server}/postback", params=params, timeout=30)
        assert (response.status_code, response.json()["reason"]) == (status, reason)
    assert not Conversion.objects.exists()
    assert list(InboundPostbackLog.objects.order_by("id").values_list("reason", flat=True)) == [
        reason for _, _, reason in cases
    ]


def test_post_and_other_paths_still_go_through_django(server):
    goal = factories.GoalFactory(code="lead")
    click = factories.ClickFactory(offer=goal.offer)
    posted = requests.post(
        f"{server}/postback",
        json={"click_id": click.click_id, "order_id": "P-1", "token": factories.ADVERTISER_TOKEN},
        timeout=30,
    )
    assert (posted.status_code, posted.json()["result"]) == (200, "accepted")
    assert requests.put(f"{server}/postback", timeout=30).status_code == 405


def test_postbacks_after_postgresql_dropped_the_servers_connections_are_answered(server):
    """PostgreSQL restarted (or failed over) while the web processes sat idle: the next
    postbacks reconnect before their first statement instead of answering 500 once a process."""
    goal = factories.GoalFactory(code="lead")
    clicks = [factories.ClickFactory(offer=goal.offer, ip=f"81.2.69.{n}") for n in range(1, 21)]

    def fire(click) -> int:
        params = {"click_id": click.click_id, "token": factories.ADVERTISER_TOKEN}
        return requests.get(f"{server}/postback", params=params, timeout=30).status_code

    assert [fire(click) for click in clicks[:10]] == [200] * 10  # every worker has a connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        assert cursor.fetchall(), "the server held no connection"
        deadline = time.monotonic() + 10
        while True:  # backends exit asynchronously
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            )
            if cursor.fetchone()[0] == 0:
                break
            assert time.monotonic() < deadline, "the backends did not exit"
            time.sleep(0.01)
    assert [fire(click) for click in clicks[10:]] == [200] * 10
    assert Conversion.objects.count() == 20
