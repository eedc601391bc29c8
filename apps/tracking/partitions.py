"""Daily partitions of tracking_click: created ahead of time, dropped after the retention period."""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta
from typing import Any

from django.db import connection, transaction

logger = logging.getLogger(__name__)

TABLE = "tracking_click"
DEFAULT_PARTITION = f"{TABLE}_default"
_NAME = re.compile(rf"^{TABLE}_p(\d{{8}})$")


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def day_bounds(day: date) -> tuple[str, str]:
    """A UTC day's partition bounds, as SQL literals' text (a date's digits: safe in SQL text)."""
    return f"{day.isoformat()} 00:00:00+00", f"{(day + timedelta(days=1)).isoformat()} 00:00:00+00"


def partition_ensure(day: date) -> None:
    """Create the partition for one UTC day if missing (idempotent, safe to race).

    PostgreSQL refuses to create a partition while the default partition holds rows in its range
    (clicks that arrived when this job had not run in time): those rows move into the new
    partition in the same transaction, so the job never gets stuck on them.
    """
    name = partition_name(day)
    start, end = day_bounds(day)
    bounds = f"FOR VALUES FROM ('{start}') TO ('{end}')"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if _first(cursor):
            return
        # Creating a partition takes this lock anyway; taking it first serialises racing jobs.
        # Readers queue behind a waiting lock, so give up (the task retries) rather than wait
        # long behind a slow report.
        cursor.execute("SET LOCAL lock_timeout = '5s'")
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        if _first(cursor):
            return
        in_range = "created_at >= %s AND created_at < %s"
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE {in_range})", [start, end]
        )
        if not _first(cursor):
            cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} {bounds}")
            return
        cursor.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE {in_range} RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        logger.warning("moved %s clicks from the default partition into %s", cursor.rowcount, name)
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} {bounds}")


def _first(cursor: Any) -> Any:
    row = cursor.fetchone()
    return row[0] if row else None


def partitions_list() -> list[date]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    days = []
    for name in names:
        match = _NAME.match(name)
        if match:
            raw = match.group(1)
            days.append(date(int(raw[:4]), int(raw[4:6]), int(raw[6:])))
    return sorted(days)


def partitions_maintain(*, today: date, days_ahead: int, retention_days: int) -> dict[str, int]:
    """Create partitions from yesterday to `days_ahead`; drop those wholly past retention."""
    created = 0
    existing = set(partitions_list())
    for offset in range(-1, days_ahead + 1):
        day = today + timedelta(days=offset)
        if day not in existing:
            partition_ensure(day)
            created += 1
    dropped = 0
    cutoff = today - timedelta(days=retention_days)
    for day in existing:
        if day < cutoff:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")
            dropped += 1
    # Rows that fell into the default partition (no daily one existed then) age out too.
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {DEFAULT_PARTITION} WHERE created_at < %s",
            [f"{cutoff.isoformat()} 00:00:00+00"],
        )
        purged = int(cursor.rowcount)
    return {"created": created, "dropped": dropped, "purged": purged}
