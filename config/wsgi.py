"""WSGI entry point. `/click` (and `/aff_c`) and GET postbacks are answered before Django's
middleware and URL resolver: the hot paths need none of sessions, auth, CSRF or messages, and they
cost more than a click itself. Everything else, POST postbacks included, is plain Django."""

import gc
import json
import logging
import os
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
django_application = get_wsgi_application()

from django.core import signals  # noqa: E402
from django.core.handlers.wsgi import get_script_name  # noqa: E402
from django.urls import get_resolver  # noqa: E402
from django.utils import timezone  # noqa: E402
from django.utils.encoding import iri_to_uri  # noqa: E402

from apps.common.net import query_params, request_is_https  # noqa: E402
from apps.conversions.views import (  # noqa: E402
    POSTBACK_PROCESSES,
    answer_without_conversion,
    postback_answer,
)
from apps.tracking.http import click_respond  # noqa: E402

logger = logging.getLogger("django.request")

CLICK_PATHS = frozenset({"/click", "/aff_c"})


def _query(environ: dict[str, Any]) -> dict[str, str] | None:
    try:
        return query_params(environ)
    except ValueError:  # over DATA_UPLOAD_MAX_NUMBER_FIELDS
        return None


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


def postback_application(
    environ: dict[str, Any], start_response: Callable[..., Any]
) -> Iterable[bytes]:
    """A GET postback (every query-string dialect), the same logic as the Django view
    (apps.conversions.views.postback_answer). Database connections are looked after as Django's
    handler does, through its request_started and request_finished signals."""
    process = POSTBACK_PROCESSES[environ["PATH_INFO"]]
    # The path as Django's request.path gives it (a signature covers it), under a script prefix.
    path = get_script_name(environ).rstrip("/") + environ["PATH_INFO"]
    signals.request_started.send(sender=__name__, environ=environ)
    try:
        status, payload = postback_answer(
            process,
            meta=environ,
            path=path,
            read_body=lambda: b"",
            parse=lambda _body: query_params(environ),
        )
    except Exception:
        # As Django would: logged with the traceback, a 500 (never for bad input: that is a 4xx).
        logger.exception("Internal Server Error: %s", path)
        # Error reporters (Sentry's Django integration, say) listen for this; there is no
        # Django request object on this path.
        signals.got_request_exception.send(sender=None, request=None)
        status, payload = 500, answer_without_conversion("server_error", result="error")
    finally:
        signals.request_finished.send(sender=__name__)
    body = json.dumps(payload).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
    if path in CLICK_PATHS and method in ("GET", "HEAD"):
        return click_application(environ, start_response)
    if path in POSTBACK_PROCESSES and method == "GET":
        return postback_application(environ, start_response)
    return django_application(environ, start_response)


def _freeze_startup_objects() -> None:
    """Load what the first requests would load lazily (the URLconf and every view and admin
    behind it), then take every object alive at that point out of the garbage collector's
    scans: its full collections then look only at what requests allocated since. Without this
    one took 18 ms in a web process (measured in-process over 6,000 postbacks; 0.9 ms with it),
    a stall for every request queued behind it."""
    get_resolver().url_patterns  # noqa: B018 - imported for its side effect
    gc.freeze()


_freeze_startup_objects()
