"""Outbound HTTP to addresses strangers choose (affiliate postback URLs), without SSRF.

The host is resolved once, every address it resolves to must be public, and the connection is made
to a checked address (so DNS cannot answer differently between check and connect). Redirects are
not followed, credentials in URLs are refused, bodies are read up to a cap, and the whole exchange
has a deadline (a per-read timeout alone lets a server that drips a byte at a time hold a worker).
Ports browsers refuse (BAD_PORTS) are refused too.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from django.conf import settings

from apps.common.net import IPAddress, ip_is_public, ip_parse

USER_AGENT = "OpenCPA-Postback/1.0"
# The Fetch standard's "bad ports", which browsers never call over HTTP: services (SMTP, IRC, SIP,
# FTP…) that may take an HTTP request's lines as their own commands, so a URL on one of them
# would have our workers talk to that service for whoever chose the URL.
BAD_PORTS = frozenset(
    {0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95}
    | {101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161}
    | {179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563}
    | {587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060}
    | {5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080}
)
_BLOCKED_HOST_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain")
# What a DNS name may hold once IDNA-encoded; anything else ("%31", a tab) is not a name a resolver
# should be asked about (some resolvers decode or cut such names in surprising ways).
_HOSTNAME = re.compile(r"[a-z0-9_.-]{1,253}")


URL_REFUSED = "Use a public http(s) URL without credentials, on a port browsers may call."


class UnsafeUrl(Exception):
    """The URL may not be called; the code says why (kept out of affiliate-facing answers)."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(code)


@dataclass(frozen=True)
class SafeResponse:
    status: int
    body: str
    latency_ms: int


def _address_allowed(address: IPAddress) -> bool:
    if ip_is_public(address):
        return True
    return bool(settings.OUTBOUND_ALLOW_LOOPBACK and address.is_loopback)


def _literal_address(host: str) -> IPAddress | None:
    """An IP written in any form the C resolver accepts (2130706433, 0x7f.1, 127.1, ::1)."""
    address = ip_parse(host)
    if address is not None:
        return address
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    return ip_parse(socket.inet_ntoa(packed))


def url_check_shape(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an http(s) URL without credentials; raises UnsafeUrl."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("malformed_url") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("scheme_not_allowed")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("credentials_in_url")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("missing_host")
    if ip_parse(host) is None and not _hostname_ok(host):
        raise UnsafeUrl("malformed_url")
    local_name = host == "localhost" or host.endswith(_BLOCKED_HOST_SUFFIXES)
    if local_name and not settings.OUTBOUND_ALLOW_LOOPBACK:
        raise UnsafeUrl("address_not_public")
    # `:0` is a port (refused below), not the scheme's default.
    return (
        parts.scheme,
        host,
        port if port is not None else (443 if parts.scheme == "https" else 80),
    )


def _hostname_ok(host: str) -> bool:
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return _HOSTNAME.fullmatch(ascii_host.lower()) is not None


def request_target(url: str) -> str:
    """The path and query as they go on the request line: http.client sends it as ASCII, so
    anything else is percent-encoded and the rest kept (a signature over the target signs these
    exact bytes)."""
    parts = urlsplit(url)
    return quote(
        (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        safe="/?&=%:@!$'()*+,;~-._",
    )


def _resolve_checked(host: str, port: int) -> list[IPAddress]:
    """Every address the host stands for, in resolver order; all of them must be allowed."""
    literal = _literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise UnsafeUrl("unresolvable_host") from exc
        addresses = [a for a in (ip_parse(str(info[4][0])) for info in infos) if a is not None]
    if not addresses:
        raise UnsafeUrl("unresolvable_host")
    if not all(_address_allowed(address) for address in addresses):
        raise UnsafeUrl("address_not_public")
    return list(dict.fromkeys(addresses))


_pool_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}  # by process id


def _lookup_pool() -> ThreadPoolExecutor:
    """This process's lookup threads (made here, not at import: a forked worker does not
    inherit its parent's threads)."""
    with _pool_lock:
        pid = os.getpid()
        if pid not in _pools:
            _pools.clear()
            _pools[pid] = ThreadPoolExecutor(4, thread_name_prefix="safe-http-dns")
        return _pools[pid]


def _resolve_within(host: str, port: int, seconds: float) -> list[IPAddress]:
    """_resolve_checked, given up on after `seconds`: the C resolver cannot be interrupted and
    may retry for many seconds, and a call must end within its deadline (the outbox's lease
    counts on it). A lookup given up on finishes in the background."""
    if _literal_address(host) is not None:
        return _resolve_checked(host, port)
    lookup = _lookup_pool().submit(_resolve_checked, host, port)
    try:
        return lookup.result(timeout=max(seconds, 0.001))
    except TimeoutError as exc:
        lookup.cancel()
        raise TimeoutError(f"no DNS answer within {seconds:.1f}s") from exc


def url_check_on_save(url: str) -> None:
    """Refuse URLs that can already be seen to be unsafe; an unresolvable name is checked later."""
    _scheme, host, port = url_check_shape(url)
    try:
        _resolve_checked(host, port)
    except UnsafeUrl as exc:
        if exc.code != "unresolvable_host":
            raise
    _port_check(port)


def _port_check(port: int) -> None:
    """After the address checks, so a private address is refused as such whatever its port."""
    if port in BAD_PORTS:
        raise UnsafeUrl("port_not_allowed")


def _connect_checked(addresses: list[IPAddress], port: int, deadline: float) -> socket.socket:
    """A connection to the first checked address that answers (a host with an AAAA record must
    still work from a worker without IPv6), never to anything the resolver says later."""
    error: OSError = TimeoutError("no time left to connect")
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            return socket.create_connection((str(address), port), remaining)
        except OSError as exc:
            error = exc
    raise error


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, addresses: list[IPAddress], deadline: float):
        super().__init__(host, port, timeout=max(deadline - time.monotonic(), 0.001))
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _connect_checked(self._addresses, self.port, self._deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: list[IPAddress], deadline: float):
        super().__init__(
            host,
            port,
            timeout=max(deadline - time.monotonic(), 0.001),
            context=ssl.create_default_context(),
        )
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        sock = _connect_checked(self._addresses, self.port, self._deadline)
        context = self._context  # type: ignore[attr-defined]
        # Handshake after self.sock is set, so the request deadline can cut a slow handshake too.
        self.sock = context.wrap_socket(
            sock, server_hostname=self.host, do_handshake_on_connect=False
        )
        self.sock.do_handshake()


def safe_request(
    method: str,
    url: str,
    *,
    timeout: float,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_body: int = 1024,
) -> SafeResponse:
    """One request; raises UnsafeUrl for refused targets, OSError/HTTPException on failure.

    `timeout` bounds the whole request (DNS, connect, send, headers and body), TimeoutError
    past it.
    """
    started = time.monotonic()
    scheme, host, port = url_check_shape(url)
    addresses = _resolve_within(host, port, timeout)
    _port_check(port)
    target = request_target(url)
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, addresses, started + timeout)
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown (not SSLSocket's) wakes the blocked read at once.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    deadline = threading.Timer(max(started + timeout - time.monotonic(), 0.0), expire)
    deadline.daemon = True
    deadline.start()
    try:
        connection.request(
            method, target, body=body, headers={"User-Agent": USER_AGENT, **(headers or {})}
        )
        response = connection.getresponse()
        payload = response.read(max_body)
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {timeout}s") from exc
        raise
    finally:
        deadline.cancel()
        connection.close()
    if expired.is_set():  # the answer was cut short when the deadline closed the socket
        raise TimeoutError(f"no complete answer within {timeout}s")
    return SafeResponse(
        status=response.status,
        body=payload.decode("utf-8", errors="replace"),
        latency_ms=int((time.monotonic() - started) * 1000),
    )
