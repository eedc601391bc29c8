"""The one macro engine: `{name}` placeholders filled with URL-encoded values.

Used for offer destination URLs and for affiliate postback URLs. A value is encoded whole, so it can
never add a parameter, change the host, or inject another macro; an unknown macro stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

# Longer redirects are refused by Django (16 KiB) and by most web servers' request-line limits
# (nginx and Apache: 8 KiB), so a longer one could only fail at the advertiser's end.
REDIRECT_MAX_LENGTH = 8192

_MACRO = re.compile(r"\{([a-z0-9_]{1,32})\}")

ALIASES = {"transaction_id": "click_id"}


def macro_render(template: str, values: Mapping[str, object]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = ALIASES.get(match.group(1), match.group(1))
        if name not in values:
            return match.group(0)
        value = values[name]
        return quote("" if value is None else str(value), safe="")

    return _MACRO.sub(replace, template)


def destination_is_usable(template: str) -> bool:
    """An absolute http(s) URL whose scheme and host hold no macro.

    Macro values are percent-encoded whole, so they cannot add a "/", "?", "#" or "@": with no
    macro in the host, nothing a click sends can change where the redirect goes, and the
    rendered URL only needs its length checked.
    """
    if len(template) > REDIRECT_MAX_LENGTH:
        return False
    try:
        parts = urlsplit(template)
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and "{" not in parts.netloc
        and "}" not in parts.netloc
    )
