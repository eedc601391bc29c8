"""WSGI entry point. `/click` (and `/aff_c`) are answered before Django's middleware and URL
resolver: the hot path needs none of sessions, auth, CSRF or messages, and they cost more than the
click itself. Everything else is plain Django."""

import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
django_application = get_wsgi_application()

from django.conf import settings  # noqa: E402 - after Django is set up
from django.utils import timezone  # noqa: E402
from django.utils.encoding import iri_to_uri  # noqa: E402

from apps.common.net import request_is_https  # noqa: E402
from apps.tracking.http import click_respond  # noqa: E402

CLICK_PATHS = frozenset({"/click", "/aff_c"})


def _query(environ: dict[str, Any]) -> dict[str, str] | None:
    raw = environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8", "replace")
    try:
        pairs = parse_qsl(
            raw, keep_blank_values=True, max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        )
    except ValueError:
        return None
    return dict(pairs)


def click_application(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    # Behind a TLS proxy the click cookie must still be SameSite=None; Secure, or the pixels on
    # the advertiser's pages (a third-party context) never see it.
    secure = request_is_https(environ)
    answer = click_respond(meta=environ, query=_query(environ), now=timezone.now(), secure=secure)
    headers = [
        ("Location", iri_to_uri(answer.location)),
        ("Content-Length", "0"),
        *answer.headers,
        *(("Set-Cookie", cookie.header()) for cookie in answer.cookies),
    ]
    start_response("302 Found", headers)
    return [b""]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") in CLICK_PATHS and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
        return click_application(environ, start_response)
    return django_application(environ, start_response)
