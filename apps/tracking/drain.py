"""The drain: clicks move from the Redis stream to PostgreSQL in batches, enriched on the way.

Entries are read through a consumer group and acknowledged (and deleted) only after the batch is
committed. Entries a dead consumer left unacknowledged are reclaimed after
CLICK_DRAIN_CLAIM_IDLE_MS.
A batch replayed after a crash between commit and acknowledgement inserts nothing twice: rows go in
with ON CONFLICT DO NOTHING on (click_id, created_at).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import orjson
import redis
from django.conf import settings

from apps.common.redis import redis_client
from apps.tracking import click_store
from apps.tracking.buffer import DRAIN_GROUP, STREAM_KEY
from apps.tracking.enrichment import click_enrich

logger = logging.getLogger(__name__)


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _group_ensure(client: redis.Redis) -> None:
    try:
        client.xgroup_create(STREAM_KEY, DRAIN_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _rows(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    rows = []
    for _entry_id, fields in entries:
        if not fields or b"c" not in fields:
            continue
        click = orjson.loads(fields[b"c"])
        click_enrich(click, buffered_unique=fields.get(b"u") == b"1")
        rows.append(click)
    return rows


def clicks_drain(
    *,
    consumer: str | None = None,
    batch_size: int | None = None,
    max_batches: int = 1000,
    claim_idle_ms: int | None = None,
) -> int:
    """Drain until the stream is empty or max_batches is reached; returns rows handled."""
    client = redis_client()
    consumer = consumer or consumer_name()
    batch_size = batch_size or settings.CLICK_DRAIN_BATCH_SIZE
    claim_idle_ms = settings.CLICK_DRAIN_CLAIM_IDLE_MS if claim_idle_ms is None else claim_idle_ms
    _group_ensure(client)
    handled = 0
    for _ in range(max_batches):
        _cursor, entries, *_deleted = client.xautoclaim(
            STREAM_KEY,
            DRAIN_GROUP,
            consumer,
            min_idle_time=claim_idle_ms,
            start_id="0-0",
            count=batch_size,
        )
        replay = bool(entries)  # reclaimed entries may have been committed before their crash
        if not entries:
            response = client.xreadgroup(DRAIN_GROUP, consumer, {STREAM_KEY: ">"}, count=batch_size)
            entries = response[0][1] if response else []
        if not entries:
            break
        rows = _rows(entries)
        click_store.clicks_insert(rows, replay=replay)  # committed before we acknowledge
        ids = [entry_id for entry_id, _fields in entries]
        # MULTI: an entry acknowledged but not deleted would sit in the stream for ever.
        pipe = client.pipeline(transaction=True)
        pipe.xack(STREAM_KEY, DRAIN_GROUP, *ids)
        pipe.xdel(STREAM_KEY, *ids)
        pipe.execute()
        handled += len(rows)
    return handled


def clicks_backlog() -> int:
    """Entries in the stream not yet drained (for monitoring and benchmarks)."""
    try:
        return int(redis_client().xlen(STREAM_KEY))
    except redis.RedisError:
        return -1
