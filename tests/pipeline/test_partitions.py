"""Daily partitions of tracking_click: made ahead, dropped after retention, one touched per
lookup by click id."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest
import time_machine
from django.db import connection

from apps.tracking import click_store
from apps.tracking.click_ids import click_id_new
from apps.tracking.partitions import (
    DEFAULT_PARTITION,
    partition_ensure,
    partition_name,
    partitions_list,
    partitions_maintain,
)
from tests.pipeline.conftest import click_url, drain

pytestmark = pytest.mark.django_db

TODAY = datetime.now(UTC).date()


@pytest.fixture(autouse=True)
def _noon_of_today():
    """Run each test at noon of TODAY, clock ticking: a run that crosses midnight UTC (CI
    started at 23:58) must not see TODAY become yesterday between two lines of one test."""
    with time_machine.travel(datetime.combine(TODAY, time(12, 0), tzinfo=UTC), tick=True):
        yield


def _store_click_at(day: date, *, offer_id: int = 1, affiliate_id: int = 2) -> str:
    moment = datetime.combine(day, time(12, 0), tzinfo=UTC)
    click_id = click_id_new(moment)
    inserted = click_store.clicks_insert(
        [
            {
                "click_id": click_id,
                "offer_id": offer_id,
                "affiliate_id": affiliate_id,
                "created_at": moment.isoformat(),
            }
        ]
    )
    assert inserted == 1
    return click_id


def _where(click_id: str) -> str | None:
    """The partition a click's row lives in."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM tracking_click WHERE click_id = %s", [click_id]
        )
        row = cursor.fetchone()
    return row[0] if row else None


def test_maintain_creates_the_days_ahead_and_drops_what_retention_lets_go():
    before = set(partitions_list())
    partition_ensure(TODAY - timedelta(days=31))  # wholly before the 30-day retention
    partition_ensure(TODAY - timedelta(days=30))  # its last day: kept
    old_click = _store_click_at(TODAY - timedelta(days=31))
    kept_click = _store_click_at(TODAY - timedelta(days=30))
    assert _where(old_click) == partition_name(TODAY - timedelta(days=31))

    ahead = {TODAY + timedelta(days=n) for n in range(-1, 11)}
    result = partitions_maintain(today=TODAY, days_ahead=10, retention_days=30)

    assert result == {"created": len(ahead - before), "dropped": 1, "purged": 0}
    assert set(partitions_list()) == before | ahead | {TODAY - timedelta(days=30)}
    assert (_where(old_click), _where(kept_click)) == (
        None,
        partition_name(TODAY - timedelta(days=30)),
    )
    # Run again: nothing to do.
    assert partitions_maintain(today=TODAY, days_ahead=10, retention_days=30) == {
        "created": 0,
        "dropped": 0,
        "purged": 0,
    }


def test_the_task_entry_point_uses_the_settings(settings):
    settings.CLICK_PARTITIONS_AHEAD_DAYS = 12
    from apps.tracking.tasks import maintain_partitions

    maintain_partitions()
    assert TODAY + timedelta(days=12) in partitions_list()
    assert TODAY + timedelta(days=13) not in partitions_list()


def test_clicks_without_a_daily_partition_land_in_the_default_one_and_move_later():
    day = TODAY + timedelta(days=40)
    click_id = _store_click_at(day)
    assert _where(click_id) == DEFAULT_PARTITION
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    assert click_store.click_get(click_id=click_id).click_id == click_id

    partition_ensure(day)  # PostgreSQL alone would refuse: the default partition has its rows
    assert _where(click_id) == partition_name(day)
    # The lookup's prepared statement, planned when the day had no partition, is planned again.
    assert click_store.click_get(click_id=click_id).click_id == click_id
    # The moved-into partition carries the table's unique key: a replay adds nothing.
    with connection.cursor() as cursor:
        cursor.execute("SELECT created_at FROM tracking_click WHERE click_id = %s", [click_id])
        created_at = cursor.fetchone()[0]
    assert (
        click_store.clicks_insert(
            [{"click_id": click_id, "offer_id": 1, "affiliate_id": 2, "created_at": created_at}]
        )
        == 0
    )
    partition_ensure(day)  # and again: nothing happens
    assert _where(click_id) == partition_name(day)


def test_retention_also_clears_old_rows_from_the_default_partition():
    old = _store_click_at(TODAY - timedelta(days=100))
    recent = _store_click_at(TODAY - timedelta(days=20))
    assert {_where(old), _where(recent)} == {DEFAULT_PARTITION}
    result = partitions_maintain(today=TODAY, days_ahead=1, retention_days=30)
    assert result["purged"] == 1
    assert (_where(old), _where(recent)) == (None, DEFAULT_PARTITION)


def test_a_lookup_by_click_id_reads_one_partition(browser, offer, affiliate):
    partition_ensure(TODAY)
    click_id = (
        browser.get(click_url(offer_id=offer.pk, aff_id=affiliate.pk)).cookies["ocpa_cid"].value
    )
    drain()
    click = click_store.click_get(click_id=click_id)
    assert (click.click_id, click.offer_id, click.offer.advertiser_id) == (
        click_id,
        offer.pk,
        offer.advertiser_id,
    )
    # The lookup is a prepared statement: PostgreSQL runs it with a generic plan, pruned at
    # execution time.
    sql, params = click_store.click_query(click_id)
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Pruned by the second the click id carries: today's partition, through its unique index.
    assert re.findall(r" on (tracking_click\w*)", plan) == [partition_name(TODAY)]


def test_a_lookup_locks_only_its_days_partition_however_many_are_kept(browser, offer, affiliate):
    """A lookup's prepared statement runs on a generic plan. Pruned only at execution, that plan
    would lock every partition the retention keeps (180 days by default) on every lookup first;
    the day is in the statement's text, so the plan holds that one partition alone."""
    for days_ago in range(20):
        partition_ensure(TODAY - timedelta(days=days_ago))
    click_id = (
        browser.get(click_url(offer_id=offer.pk, aff_id=affiliate.pk)).cookies["ocpa_cid"].value
    )
    drain()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    assert click_store.click_get(click_id=click_id) is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " JOIN pg_inherits i ON i.inhrelid = c.oid"
            " WHERE l.pid = pg_backend_pid() AND l.mode = 'AccessShareLock'"
            " AND i.inhparent = 'tracking_click'::regclass AND c.relname <> %s",
            [DEFAULT_PARTITION],
        )
        locked = sorted(row[0] for row in cursor.fetchall())
    assert locked == [partition_name(TODAY)]


def _id_of_day(days_ago: int) -> str:
    return click_id_new(datetime.combine(TODAY - timedelta(days=days_ago), time(12), tzinfo=UTC))


def test_ids_of_other_days_share_one_statement_and_are_still_found():
    """Only the last DAY_IN_TEXT_DAYS name their day in the lookup's text: the ids of any other
    day (old clicks, future or forged ones) share one statement, so they cannot fill the
    connection's cache of prepared statements."""
    recent = {
        click_store.click_query(_id_of_day(days))[0]
        for days in range(click_store.DAY_IN_TEXT_DAYS + 1)
    }
    assert len(recent) == click_store.DAY_IN_TEXT_DAYS + 1
    others = {
        click_store.click_query(_id_of_day(days))[0]
        for days in (click_store.DAY_IN_TEXT_DAYS + 1, 30, 400, -1, -3000)
    }
    assert len(others) == 1 and others.isdisjoint(recent)

    old = _store_click_at(TODAY - timedelta(days=30))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
    assert click_store.click_get(click_id=old).click_id == old
