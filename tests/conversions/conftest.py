from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from tests import factories


@pytest.fixture
def click(goal, affiliate):
    """A click on the `goal` fixture's offer, made a minute ago from a GB browser."""
    return factories.ClickFactory(
        offer=goal.offer, affiliate=affiliate, created_at=timezone.now() - timedelta(minutes=1)
    )


@dataclass
class Receiver:
    """A local stand-in for an affiliate's tracker: answers `status` with `body`, records paths."""

    url: str = ""
    status: int = 200
    body: bytes = b"ok"
    hits: list[str] = field(default_factory=list)


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}"
    yield state
    server.shutdown()
    server.server_close()
