"""Outbound HTTP to URLs strangers choose: what is refused, and what a real request does."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time

import pytest

from apps.common.safe_http import (
    USER_AGENT,
    SafeResponse,
    UnsafeUrl,
    safe_request,
    url_check_on_save,
    url_check_shape,
)

QUICK = 0.5  # seconds; refusals never get as far as a connection

NOT_PUBLIC = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8000/pb?x=1",
    "http://127.255.255.254/",
    "http://localhost/",
    "http://LOCALHOST:8080/",
    "http://localhost./",
    "http://api.localhost/",
    "http://printer.local/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://db.localdomain/",
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.0.1/",
    "http://192.168.255.255/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://[::1]/",
    "http://[::1]:8080/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/",  # AWS metadata over IPv6
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://017700000001/",  # ... as one octal number
    "http://0x7f000001/",  # ... as one hex number
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://0177.1/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0x0a.0.0.1/",  # 10.0.0.1
    "http://3232235521/",  # 192.168.0.1
    "http://2852039166/",  # 169.254.169.254
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.2.1/",
    "https://127.0.0.1/",
    "https://[::1]:443/",
]

BAD_SHAPE = [
    ("ftp://example.com/file", "scheme_not_allowed"),
    ("file:///etc/passwd", "scheme_not_allowed"),
    ("gopher://example.com/", "scheme_not_allowed"),
    ("dict://example.com:11211/", "scheme_not_allowed"),
    ("javascript:alert(1)", "scheme_not_allowed"),
    ("//example.com/pb", "scheme_not_allowed"),
    ("example.com/pb", "scheme_not_allowed"),
    ("", "scheme_not_allowed"),
    ("http://user:pass@example.com/", "credentials_in_url"),
    ("http://user@example.com/", "credentials_in_url"),
    ("http://:@example.com/", "credentials_in_url"),
    ("http://example.com@127.0.0.1/", "credentials_in_url"),
    ("http://127.0.0.1:80@example.com/", "credentials_in_url"),
    ("http:///pb", "missing_host"),
    ("http://:80/pb", "missing_host"),
    ("http://example.com:99999/", "malformed_url"),
    ("http://example.com:port/", "malformed_url"),
    ("http://[::1/", "malformed_url"),
]


# --- refused -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_on_save_refuses_non_public_targets(url):
    with pytest.raises(UnsafeUrl) as refused:
        url_check_on_save(url)
    assert refused.value.code == "address_not_public"


@pytest.mark.parametrize("url", NOT_PUBLIC)
def test_request_refuses_non_public_targets(url):
    with pytest.raises(UnsafeUrl) as refused:
        safe_request("GET", url, timeout=QUICK)
    assert refused.value.code == "address_not_public"


@pytest.mark.parametrize(("url", "code"), BAD_SHAPE)
def test_bad_shapes_are_refused_everywhere(url, code):
    for check in (url_check_shape, url_check_on_save, lambda u: safe_request("GET", u, timeout=1)):
        with pytest.raises(UnsafeUrl) as refused:
            check(url)
        assert refused.value.code == code


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14:25/pb",  # SMTP
        "http://93.184.215.14:0/pb",  # not the scheme's default
        "https://93.184.215.14:6667/pb",  # IRC
        "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:22/",  # SSH
    ],
)
def test_ports_browsers_refuse_are_refused_on_save_and_at_request_time(url):
    """The Fetch standard's bad ports: a service there may read an HTTP request's lines as its
    own commands. Refused before any connection."""
    for check in (url_check_on_save, lambda u: safe_request("GET", u, timeout=QUICK)):
        with pytest.raises(UnsafeUrl) as refused:
            check(url)
        assert refused.value.code == "port_not_allowed"


def test_a_private_address_on_a_bad_port_is_refused_as_not_public():
    with pytest.raises(UnsafeUrl) as refused:
        url_check_on_save("http://127.0.0.1:25/")
    assert refused.value.code == "address_not_public"


def test_unsafe_url_carries_its_code():
    error = UnsafeUrl("address_not_public")
    assert (error.code, str(error)) == ("address_not_public", "address_not_public")


# --- names and the resolver ----------------------------------------------------------------------


def test_name_resolving_to_loopback_is_refused(fake_resolver):
    answers, _lookups = fake_resolver
    answers["loopback.test"] = [["127.0.0.1"]]
    for check in (url_check_on_save, lambda u: safe_request("GET", u, timeout=QUICK)):
        with pytest.raises(UnsafeUrl) as refused:
            check("http://loopback.test/pb")
        assert refused.value.code == "address_not_public"


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["::1"],
        ["fe80::1"],
        ["::ffff:127.0.0.1"],
        ["93.184.215.14", "127.0.0.1"],  # one bad answer among good ones is enough
        ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "fd00::1"],
    ],
)
def test_name_with_any_non_public_address_is_refused(fake_resolver, addresses):
    answers, _lookups = fake_resolver
    answers["mixed.test"] = [addresses]
    with pytest.raises(UnsafeUrl) as refused:
        url_check_on_save("https://mixed.test/pb")
    assert refused.value.code == "address_not_public"


def test_name_with_public_addresses_is_accepted_on_save(fake_resolver):
    answers, lookups = fake_resolver
    answers["tracker.test"] = [["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]]
    url_check_on_save("https://tracker.test/pb?cid={click_id}")
    assert lookups == ["tracker.test"]


def test_rebinding_public_on_save_then_loopback_is_refused_at_request_time(fake_resolver):
    answers, lookups = fake_resolver
    answers["rebind.test"] = [["93.184.215.14"], ["127.0.0.1"]]
    url_check_on_save("http://rebind.test/pb")
    with pytest.raises(UnsafeUrl) as refused:
        safe_request("GET", "http://rebind.test/pb", timeout=QUICK)
    assert refused.value.code == "address_not_public"
    assert lookups == ["rebind.test", "rebind.test"]


def test_unresolvable_name_passes_on_save_but_not_at_request_time(fake_resolver):
    url_check_on_save("http://nowhere.test/pb")
    with pytest.raises(UnsafeUrl) as refused:
        safe_request("GET", "http://nowhere.test/pb", timeout=QUICK)
    assert refused.value.code == "unresolvable_host"


def test_resolver_with_no_answers_is_unresolvable(fake_resolver):
    answers, _lookups = fake_resolver
    answers["empty.test"] = [[]]
    with pytest.raises(UnsafeUrl) as refused:
        safe_request("GET", "http://empty.test/", timeout=QUICK)
    assert refused.value.code == "unresolvable_host"


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/",
        "https://93.184.215.14:8443/pb?cid={click_id}&p={payout}",
        "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/pb",
        "http://[::ffff:93.184.215.14]/pb",
        "HTTP://93.184.215.14/",
        "http://1572395790/",  # 93.184.215.14 as one number: odd, but public
    ],
)
def test_public_literals_are_accepted_on_save(url):
    url_check_on_save(url)


def test_shape_gives_scheme_host_and_default_ports():
    assert url_check_shape("http://Example.COM./pb") == ("http", "example.com", 80)
    assert url_check_shape("https://example.com/pb") == ("https", "example.com", 443)
    assert url_check_shape("https://example.com:8443/") == ("https", "example.com", 8443)
    assert url_check_shape("http://[2001:db8::1]:81/") == ("http", "2001:db8::1", 81)
    assert url_check_shape("http://example.com:0/") == ("http", "example.com", 0)


# --- real requests to a local receiver (loopback allowed, as in tests only) ----------------------


@pytest.fixture
def loopback_allowed(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True


def test_loopback_is_refused_unless_allowed(local_server):
    with pytest.raises(UnsafeUrl):
        safe_request("GET", f"{local_server.base}/ok", timeout=QUICK)
    assert local_server.seen == []


def test_get_returns_status_body_and_latency(loopback_allowed, local_server):
    response = safe_request("GET", f"{local_server.base}/ok?cid=abc&p=2.50#frag", timeout=2)
    assert isinstance(response, SafeResponse)
    assert (response.status, response.body) == (200, "hello")
    assert 0 <= response.latency_ms < 2000
    [seen] = local_server.seen
    assert (seen["method"], seen["path"], seen["body"]) == ("GET", "/ok?cid=abc&p=2.50", b"")
    assert seen["headers"]["User-Agent"] == USER_AGENT
    assert seen["headers"]["Host"] == f"127.0.0.1:{local_server.port}"


def test_post_sends_body_and_headers(loopback_allowed, local_server):
    response = safe_request(
        "POST",
        f"{local_server.base}/ok",
        timeout=2,
        body=b'{"a": 1}',
        headers={"Content-Type": "application/json", "User-Agent": "custom/1"},
    )
    assert response.status == 200
    [seen] = local_server.seen
    assert (seen["method"], seen["body"]) == ("POST", b'{"a": 1}')
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["headers"]["User-Agent"] == "custom/1"


def test_empty_path_becomes_slash(loopback_allowed, local_server):
    assert safe_request("GET", local_server.base, timeout=2).status == 404
    assert local_server.seen[0]["path"] == "/"


@pytest.mark.parametrize(("max_body", "expected"), [(100, 100), (1024, 1024), (10_000, 5000)])
def test_body_is_capped(loopback_allowed, local_server, max_body, expected):
    response = safe_request("GET", f"{local_server.base}/big", timeout=2, max_body=max_body)
    assert (response.status, response.body) == (200, "a" * expected)


def test_default_body_cap_is_1024(loopback_allowed, local_server):
    assert safe_request("GET", f"{local_server.base}/big", timeout=2).body == "a" * 1024


def test_undecodable_body_is_replaced(loopback_allowed, local_server):
    assert safe_request("GET", f"{local_server.base}/binary", timeout=2).body == "\ufffd\ufffdok"


def test_error_status_is_returned_not_raised(loopback_allowed, local_server):
    response = safe_request("GET", f"{local_server.base}/error", timeout=2)
    assert (response.status, response.body) == (500, "oops")


@pytest.mark.parametrize("route", ["/redirect", "/redirect-metadata"])
def test_redirects_are_not_followed(loopback_allowed, local_server, route):
    response = safe_request("GET", f"{local_server.base}{route}", timeout=2)
    assert (response.status, response.body) == (302, "")
    assert [seen["path"] for seen in local_server.seen] == [route]


def test_localhost_name_works_when_loopback_is_allowed(loopback_allowed, local_server):
    response = safe_request("GET", f"http://localhost:{local_server.port}/ok", timeout=2)
    assert response.status == 200
    assert local_server.seen[0]["headers"]["Host"] == f"localhost:{local_server.port}"


def test_private_addresses_stay_refused_when_loopback_is_allowed(loopback_allowed):
    for url in ("http://10.0.0.1/", "http://169.254.169.254/", "http://192.168.1.1/"):
        with pytest.raises(UnsafeUrl) as refused:
            safe_request("GET", url, timeout=QUICK)
        assert refused.value.code == "address_not_public"


def test_connection_goes_to_the_checked_address_without_a_second_lookup(
    loopback_allowed, local_server, fake_resolver
):
    answers, lookups = fake_resolver
    # A second lookup would get a private address; there must not be one.
    answers["receiver.test"] = [["127.0.0.1"], ["10.0.0.1"]]
    response = safe_request("GET", f"http://receiver.test:{local_server.port}/ok", timeout=2)
    assert response.status == 200
    assert lookups == ["receiver.test"]
    assert local_server.seen[0]["headers"]["Host"] == f"receiver.test:{local_server.port}"


def test_next_checked_address_is_tried_when_the_first_does_not_answer(
    loopback_allowed, local_server, fake_resolver
):
    answers, _lookups = fake_resolver
    answers["dual.test"] = [["::1", "127.0.0.1"]]  # the server listens on IPv4 only
    response = safe_request("GET", f"http://dual.test:{local_server.port}/ok", timeout=2)
    assert response.status == 200


def test_connection_refused_is_an_os_error(loopback_allowed):
    with socket.socket() as unused:  # a port nothing listens on once this is closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        safe_request("GET", f"http://127.0.0.1:{port}/", timeout=2)


def test_slow_server_times_out(loopback_allowed, local_server):
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        safe_request("GET", f"{local_server.base}/slow", timeout=0.3)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("route", ["/drip-headers", "/drip-body"])
def test_server_dripping_bytes_is_cut_at_the_deadline(loopback_allowed, local_server, route):
    """Each byte arrives well within the timeout; the whole answer must still be bounded."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        safe_request("GET", f"{local_server.base}{route}", timeout=0.5)
    assert time.monotonic() - started < 1.5


def test_untrusted_tls_certificate_is_refused(loopback_allowed, self_signed_tls_server):
    with pytest.raises(ssl.SSLCertVerificationError):
        safe_request("GET", f"{self_signed_tls_server.base}/ok", timeout=2)
    assert self_signed_tls_server.seen == []


def test_tls_handshake_that_never_comes_times_out(loopback_allowed, silent_tcp_server):
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        safe_request("GET", f"https://{silent_tcp_server.base}/", timeout=0.3)
    assert time.monotonic() - started < 1.5


def test_failures_are_os_or_http_errors(loopback_allowed, silent_tcp_server):
    """What callers catch: OSError (timeouts included) and HTTPException, never anything else."""
    with pytest.raises((OSError, http.client.HTTPException)):
        safe_request("GET", f"http://{silent_tcp_server.base}/", timeout=0.3)


def test_resolver_that_hangs_is_given_up_on_at_the_deadline(monkeypatch):
    """The C resolver may retry for many seconds; the call still ends within its timeout (the
    outbox lease counts on it) and nothing is connected to."""
    from apps.common import safe_http

    release = threading.Event()

    def hanging(host, port, *args, **kwargs):
        release.wait(5)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(safe_http.socket, "getaddrinfo", hanging)
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="no DNS answer"):
            safe_request("GET", "http://slow-dns.test/pb", timeout=0.3)
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
