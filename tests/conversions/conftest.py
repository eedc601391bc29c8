from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from apps.conversions.views import POSTBACK_PROCESSES
from config.wsgi import application
from tests import factories


class FastPathClient(Client):
    """Django's test client, but a GET postback goes through config.wsgi.application, the
    production entry point that answers it before Django's middleware (the fast path)."""

    def request(self, **request):
        environ = self._base_environ(**request)
        if environ["PATH_INFO"] not in POSTBACK_PROCESSES or environ["REQUEST_METHOD"] != "GET":
            return super().request(**request)
        answer: dict[str, object] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None) -> None:
            answer.update(status=int(status.split(maxsplit=1)[0]), headers=dict(headers))

        # As Django's test handler does: the test's transaction must survive the request.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            content = b"".join(application(environ, start_response))
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
        headers = answer["headers"]
        assert isinstance(headers, dict)
        response = HttpResponse(
            content, status=answer["status"], content_type=headers["Content-Type"]
        )
        response.json = lambda: json.loads(content)  # type: ignore[attr-defined]
        return response


@pytest.fixture(params=["django", "wsgi"])
def client(request):
    """Every postback test runs twice: through Django (tests, runserver, POST) and through the
    WSGI fast path that production serves GET postbacks with."""
    return Client() if request.param == "django" else FastPathClient()


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
