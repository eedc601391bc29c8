"""The production WSGI application (config/wsgi.py) with each request's time inside it recorded:
the postback benchmark serves this (scripts/serve.sh, WSGI_APP=app_timing:application) so that
it can tell the server's own answer time from the time a request waited for a free worker
thread, which wrk's latency adds together.

Each web process appends "start duration" lines (CLOCK_MONOTONIC seconds, milliseconds) to
APP_TIMING_DIR/<pid>.txt, FLUSH_EVERY requests at a time: a process stopped in the middle keeps
its last few unwritten, which the benchmark, reading a window of a run, does not miss."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from config.wsgi import application as _application

FLUSH_EVERY = 200
_DIR = os.environ["APP_TIMING_DIR"]
_lock = threading.Lock()
_times: list[tuple[float, float]] = []


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    started = time.monotonic()
    body = _application(environ, start_response)
    _record(started, time.monotonic() - started)
    return body


def _record(started: float, seconds: float) -> None:
    with _lock:
        _times.append((started, seconds))
        if len(_times) < FLUSH_EVERY:
            return
        flushed = _times[:]
        _times.clear()
    lines = "".join(f"{at:.6f} {taken * 1000:.3f}\n" for at, taken in flushed)
    with open(os.path.join(_DIR, f"{os.getpid()}.txt"), "a") as out:
        out.write(lines)
