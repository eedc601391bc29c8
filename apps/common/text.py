from __future__ import annotations

import re

# NUL cannot be stored by PostgreSQL; other C0/C1 controls have no business in a sub id or a UA.
# A lone surrogate (JSON's "\ud800") cannot be encoded to UTF-8 at all.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_clean(value: str | None, max_length: int) -> str:
    """Untrusted text made safe to store: control characters dropped, cut to max_length."""
    if not value:
        return ""
    return _CONTROL.sub("", value[: max_length * 2])[:max_length]


def digits_int(value: str, max_digits: int = 18) -> int | None:
    """The integer an id parameter spells in ASCII digits, at most max_digits of them (18 fit a
    bigint); None for anything else (str.isdigit() alone also takes "²", which int() refuses)."""
    if len(value) > max_digits or not (value.isascii() and value.isdigit()):
        return None
    return int(value)
