from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

DRIP_INTERVAL = 0.05  # far below any read timeout the tests use


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    stop: threading.Event
    seen: list[dict[str, Any]]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up (the point of several tests) are not errors


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, data: bytes) -> None:
        """One byte at a time, each well within a read timeout, for as long as the client waits."""
        for byte in data:
            if self.server.stop.is_set():
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(DRIP_INTERVAL)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": self.rfile.read(length) if length else b"",
            }
        )
        route = urlsplit(self.path).path
        port = self.server.server_address[1]
        if route == "/ok":
            self._send(200, b"hello", {"Content-Type": "text/plain"})
        elif route == "/big":
            self._send(200, b"a" * 5000)
        elif route == "/binary":
            self._send(200, b"\xff\xfeok")
        elif route == "/error":
            self._send(500, b"oops")
        elif route == "/redirect":
            self._send(302, b"", {"Location": f"http://127.0.0.1:{port}/ok"})
        elif route == "/redirect-metadata":
            self._send(302, b"", {"Location": "http://169.254.169.254/latest/meta-data/"})
        elif route == "/slow":
            self.server.stop.wait(5)
            self._send(200, b"late")
        elif route == "/drip-headers":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self._drip(b"X-Drip: " + b"d" * 1000 + b"\r\n\r\n")
        elif route == "/drip-body":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            self._drip(b"b" * 1000)
        else:
            self._send(404, b"not found")


@dataclass
class LocalServer:
    base: str
    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def _serve(server: _Server) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1 standing in for an affiliate's tracker."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stop, server.seen = threading.Event(), []
    port = server.server_address[1]
    with _serve(server):
        yield LocalServer(base=f"http://127.0.0.1:{port}", port=port, seen=server.seen)


@pytest.fixture
def self_signed_tls_server(tmp_path: Path) -> Iterator[LocalServer]:
    """The same server over TLS with a certificate nobody trusts."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stop, server.seen = threading.Event(), []
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    with _serve(server):
        yield LocalServer(base=f"https://127.0.0.1:{port}", port=port, seen=server.seen)


@pytest.fixture
def silent_tcp_server() -> Iterator[LocalServer]:
    """Accepts connections and never says a word (a TLS handshake or a response never comes)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    try:
        yield LocalServer(base=f"127.0.0.1:{port}", port=port)
    finally:
        stop.set()
        thread.join(1)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.fixture
def fake_resolver(monkeypatch):
    """Replace DNS for names under .test; IP literals still go to the real resolver.

    `answers[name]` is a list of address lists, one per lookup (the last one repeats), so a
    name can answer differently from one lookup to the next, as a rebinding attacker's would.
    """
    from apps.common import safe_http

    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if not isinstance(host, str) or not host.endswith(".test"):
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        queue = answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]

    monkeypatch.setattr(safe_http.socket, "getaddrinfo", getaddrinfo)
    return answers, lookups
