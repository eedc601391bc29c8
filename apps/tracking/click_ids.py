"""Click ids: the creation second (base 36) then 128 random bits, URL-safe.

The time prefix lets a lookup by click id go straight to one daily partition.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import lru_cache

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_PREFIX = 7  # base-36 seconds: good until the year 4453


@lru_cache(maxsize=4)  # every click in the same second shares its prefix
def _base36(number: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(_PREFIX, "0")


def click_id_new(now: datetime) -> str:
    return _base36(int(now.timestamp())) + secrets.token_urlsafe(16)


def click_id_time(click_id: str) -> datetime | None:
    """The second a click id was made in, or None for an id not in this format."""
    if len(click_id) != _PREFIX + 22:
        return None
    prefix = click_id[:_PREFIX]
    if not all(ch in _ALPHABET for ch in prefix):
        return None
    return datetime.fromtimestamp(int(prefix, 36), tz=UTC)
