from __future__ import annotations

import re

# NUL cannot be stored by PostgreSQL; other C0/C1 controls have no business in a sub id or a UA.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def text_clean(value: str | None, max_length: int) -> str:
    """Untrusted text made safe to store: control characters dropped, cut to max_length."""
    if not value:
        return ""
    return _CONTROL.sub("", value[: max_length * 2])[:max_length]
