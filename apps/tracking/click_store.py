"""Click storage, behind one module: the Redis buffer, the partitioned table and their lookups.

Moving clicks to a column store later is a change here, not elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from django.db import connection, transaction

from apps.common.db import fetchone_prepared, model_new
from apps.tracking import catalog, partitions
from apps.tracking.buffer import click_pending_get
from apps.tracking.click_ids import click_id_time
from apps.tracking.models import Click

logger = logging.getLogger(__name__)

# Columns the drain writes, in COPY order (id comes from the table's identity).
COLUMNS = (
    "click_id",
    "offer_id",
    "affiliate_id",
    "created_at",
    "ip",
    "country",
    "user_agent",
    "referrer",
    "device_type",
    "os",
    "browser",
    "is_bot",
    "non_browser",
    "is_unique",
    "fallback_reason",
    "origin_offer_id",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "source_id",
    "aff_click_id",
    "creative_id",
    "url_id",
    "ua_ip_hash",
)
_DEFAULTS: dict[str, Any] = {
    "ip": None,
    "country": "",
    "user_agent": "",
    "referrer": "",
    "device_type": "",
    "os": "",
    "browser": "",
    "is_bot": False,
    "non_browser": False,
    "is_unique": False,
    "fallback_reason": "",
    "origin_offer_id": None,
    "sub1": "",
    "sub2": "",
    "sub3": "",
    "sub4": "",
    "sub5": "",
    "source_id": "",
    "aff_click_id": "",
    "creative_id": "",
    "url_id": "",
    "ua_ip_hash": "",
}
_COLUMN_LIST = ", ".join(COLUMNS)


def _row(click: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(click.get(column, _DEFAULTS.get(column)) for column in COLUMNS)


def clicks_insert(clicks: list[dict[str, Any]], *, replay: bool = True) -> int:
    """Write a batch in one transaction.

    replay=True (a batch that may have been written before: reclaimed after a crash between
    commit and acknowledgement, or a direct write): COPY into a temporary table, then INSERT …
    ON CONFLICT DO NOTHING, so nothing goes in twice. replay=False (entries read from the stream
    for the first time, which no one can have written): COPY straight into the table.
    """
    if not clicks:
        return 0
    if not replay:
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.copy(f"COPY tracking_click ({_COLUMN_LIST}) FROM STDIN") as copy:
                for click in clicks:
                    copy.write_row(_row(click))
            return len(clicks)
    with transaction.atomic(), connection.cursor() as cursor:
        # Column names are our own constants: nothing from a request reaches this SQL.
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS click_load ON COMMIT DELETE ROWS AS "
            f"SELECT {_COLUMN_LIST} FROM tracking_click WITH NO DATA"
        )
        with cursor.copy(f"COPY click_load ({_COLUMN_LIST}) FROM STDIN") as copy:
            for click in clicks:
                copy.write_row(_row(click))
        cursor.execute(
            f"INSERT INTO tracking_click ({_COLUMN_LIST}) "
            f"SELECT {_COLUMN_LIST} FROM click_load ON CONFLICT DO NOTHING"
        )
        return int(cursor.rowcount)


_CLICK_FIELDS = ("id", *COLUMNS)
# Lookups of clicks made today or up to this many days before (UTC) name their day in the
# statement (click_query).
DAY_IN_TEXT_DAYS = 7


def click_query(
    click_id: str, *, also: str = "", also_params: Sequence[Any] = ()
) -> tuple[str, list[Any]]:
    """The SQL and parameters of a lookup by id. `also`: more select-list expressions (from
    ", "), which may refer to the row as tracking_click.

    The id carries its second, so the scan is one partition. For a click of today or the
    DAY_IN_TEXT_DAYS before (nearly every postback) the day is in the statement's text (one
    statement a day), its second a parameter: PostgreSQL plans the prepared statement's generic
    plan with that one partition in it. With the day as a parameter alone it prunes only at
    execution, after locking every partition the retention keeps (180 days by default), on
    every lookup: 0.12-0.19 ms of PostgreSQL CPU against 0.08-0.09 with 189 partitions. Older
    (or forged) ids take that one statement: a statement for every day they name would outgrow
    psycopg's cache of 100 prepared statements a connection, and each eviction costs a round
    trip and a new plan."""
    # The columns come from this module, `also` from the caller's code, the day's bounds from a
    # date (digits), never from a request.
    select = f"SELECT id, {_COLUMN_LIST}{also} FROM tracking_click WHERE click_id = %s"
    created = click_id_time(click_id)
    if created is None:
        return select + " LIMIT 1", [*also_params, click_id]
    day = created.date()
    if timedelta(0) <= datetime.now(UTC).date() - day <= timedelta(days=DAY_IN_TEXT_DAYS):
        day_start, day_end = partitions.day_bounds(day)
        select += f" AND created_at >= '{day_start}' AND created_at < '{day_end}'"
    return (
        select + " AND created_at >= %s AND created_at < %s LIMIT 1",
        [*also_params, click_id, created, created + timedelta(seconds=1)],
    )


def click_get(*, click_id: str) -> Click | None:
    """A click by id: from PostgreSQL (one partition: the id carries its second), or, before the
    drain has moved it, from the short-lived copy the buffer keeps in Redis. Its offer (with the
    advertiser) comes from the catalog, shared read-only."""
    return click_get_with(click_id=click_id)[0]


def click_get_with(
    *, click_id: str, also: str = "", also_params: Sequence[Any] = ()
) -> tuple[Click | None, tuple[Any, ...] | None]:
    """click_get, and in the same round trip the values of the select-list expressions `also`
    (see click_query): None for them when the click is not in PostgreSQL yet (the buffer's copy)
    or not at all. One round trip instead of two on the postback path."""
    row = fetchone_prepared(*click_query(click_id, also=also, also_params=also_params))
    extra = None
    if row is not None:
        columns = len(_CLICK_FIELDS)
        click: Click | None = model_new(
            Click, **dict(zip(_CLICK_FIELDS, row[:columns], strict=True))
        )
        extra = tuple(row[columns:])
    elif click_id_time(click_id) is not None:
        click = _click_pending(click_id)
    else:
        click = None
    if click is not None:
        offer = catalog.offer_with_advertiser(click.offer_id)
        if offer is not None:
            click.offer = offer
    return click, extra


def _click_pending(click_id: str) -> Click | None:
    try:
        pending = click_pending_get(click_id)
    except redis.RedisError:
        logger.warning("redis unavailable: cannot see clicks not yet drained")
        return None
    if pending is None:
        return None
    from apps.tracking.enrichment import click_enrich  # noqa: PLC0415 - enrichment is heavy

    click_enrich(pending, buffered_unique=False)
    pending["created_at"] = datetime.fromisoformat(pending["created_at"])
    return Click(**{key: value for key, value in pending.items() if key in COLUMNS})


def partitions_maintain(*, retention_days: int, days_ahead: int) -> dict[str, int]:
    return partitions.partitions_maintain(
        today=datetime.now(UTC).date(), days_ahead=days_ahead, retention_days=retention_days
    )
