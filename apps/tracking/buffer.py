"""The click buffer: one Redis round trip per click (caps, unique check, stream append).

A Lua script checks the click caps, counts the click against them, marks the visitor seen for the
unique-click window, appends the click to the stream the drain reads, and keeps a short-lived copy
under its click id so a postback that arrives before the drain still finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from django.conf import settings
from redis.commands.core import Script

from apps.common.redis import redis_client

STREAM_KEY = "clicks:stream"
DRAIN_GROUP = "drain"
PENDING_KEY_PREFIX = "clicks:pending:"

_RECORD = """
-- KEYS: stream, pending copy, N cap counters, M visitor keys (the first decides uniqueness)
-- ARGV: payload, pending ttl, unique ttl, N, N limits, N ttls
local ncaps = tonumber(ARGV[4])
for i = 1, ncaps do
  local used = tonumber(redis.call('GET', KEYS[2 + i]) or '0')
  if used >= tonumber(ARGV[4 + i]) then return {0, i} end
end
for i = 1, ncaps do
  redis.call('INCR', KEYS[2 + i])
  local ttl = tonumber(ARGV[4 + ncaps + i])
  if ttl > 0 then redis.call('EXPIRE', KEYS[2 + i], ttl, 'NX') end
end
local unique = 0
for i = 3 + ncaps, #KEYS do
  local fresh = redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[3])
  if i == 3 + ncaps and fresh then unique = 1 end
end
redis.call('XADD', KEYS[1], '*', 'c', ARGV[1], 'u', unique)
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return {1, unique}
"""


@dataclass(frozen=True, slots=True)
class CapCounter:
    key: str
    limit: int
    ttl_seconds: int  # 0: never expires (total caps)


@dataclass(frozen=True, slots=True)
class BufferResult:
    accepted: bool
    is_unique: bool
    capped_index: int | None = None  # which cap refused the click


@cache
def _record_script() -> Script:
    return redis_client().register_script(_RECORD)


def click_buffer_append(
    *, click: dict[str, Any], visitor_keys: list[str], caps: list[CapCounter]
) -> BufferResult:
    """Raises redis.RedisError when Redis cannot take the click (the caller writes it to PG)."""
    payload = orjson.dumps(click, default=str)
    keys = [STREAM_KEY, PENDING_KEY_PREFIX + click["click_id"]]
    keys += [cap.key for cap in caps] + visitor_keys
    args: list[Any] = [
        payload,
        settings.CLICK_PENDING_TTL_SECONDS,
        settings.UNIQUE_CLICK_WINDOW_SECONDS,
        len(caps),
    ]
    args += [cap.limit for cap in caps] + [cap.ttl_seconds for cap in caps]
    # The script object is cached, the client is not: pass the current one (a script bound to a
    # client that was since replaced would keep talking to the old Redis).
    accepted, detail = _record_script()(keys=keys, args=args, client=redis_client())
    if not accepted:
        return BufferResult(accepted=False, is_unique=False, capped_index=int(detail) - 1)
    return BufferResult(accepted=True, is_unique=bool(detail))


def click_buffer_append_unbilled(click: dict[str, Any]) -> None:
    """A click that went to a fallback URL: kept for the record, counted nowhere."""
    payload = orjson.dumps(click, default=str)
    redis_client().xadd(STREAM_KEY, {"c": payload, "u": 0})


def click_pending_get(click_id: str) -> dict[str, Any] | None:
    """A buffered click not yet drained to PostgreSQL, or None."""
    raw = redis_client().get(PENDING_KEY_PREFIX + click_id)
    return orjson.loads(raw) if raw else None
