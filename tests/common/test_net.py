from __future__ import annotations

import ipaddress

import pytest
from django.test import RequestFactory

from apps.common.net import _ip_parse, client_ip, ip_in_allowlist, ip_is_public, ip_parse

PROXY_NET = ipaddress.ip_network("10.0.0.0/8")


# --- ip_parse ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("81.2.69.160", "81.2.69.160"),
        (" 81.2.69.160\t", "81.2.69.160"),
        ("2001:4860:4860::8888", "2001:4860:4860::8888"),
        ("2001:4860:4860:0:0:0:0:8888", "2001:4860:4860::8888"),
        ("::ffff:81.2.69.160", "81.2.69.160"),  # IPv4 client of a dual-stack socket
        ("::FFFF:7f00:1", "127.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),  # PostgreSQL's inet refuses zone ids
        ("1.2.3.4%eth0", None),  # IPv4 has no zones
        ("", None),
        ("localhost", None),
        ("1.2.3", None),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("01.2.3.4", None),
        ("1.2.3.4/32", None),
        ("[::1]", None),
        ("1.2.3.4:80", None),
        ("\x00", None),
    ],
)
def test_ip_parse(value, parsed):
    result = ip_parse(value)
    assert (None if result is None else str(result)) == parsed


def test_ip_parse_does_not_cache_text_longer_than_an_address():
    """A postback's `ip` is anyone's: 60 KB values must not pile up in the parse cache."""
    before = _ip_parse.cache_info().currsize
    assert ip_parse(" " * 50 + "1.2.3.4" + " " * 30) is not None  # spaces around are fine
    for n in range(20):
        assert ip_parse(f"{n}" + "1" * 10_000) is None
    assert _ip_parse.cache_info().currsize <= before + 1


# --- ip_is_public --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "81.2.69.160",
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
    ],
)
def test_public_addresses(address):
    assert ip_is_public(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "0.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "100.127.255.254",
        "192.0.0.1",
        "192.0.2.1",  # documentation
        "198.18.0.1",  # benchmarking
        "198.51.100.1",
        "203.0.113.1",
        "224.0.0.1",  # multicast
        "239.255.255.250",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "::",
        "::1",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "fe80::1",  # link-local
        "fec0::1",  # site-local (deprecated, still routed internally in places)
        "fc00::1",  # unique local
        "fd12:3456:789a::1",
        "ff02::1",  # multicast
        "2001:db8::1",  # documentation
        "3fff::1",  # documentation (RFC 9637)
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::808:808",  # NAT64 of a public address still goes through a local gateway
        "64:ff9b:1::a00:1",  # local-use NAT64
        "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "100::1",  # discard-only
    ],
)
def test_non_public_addresses(address):
    assert ip_is_public(ipaddress.ip_address(address)) is False


# --- ip_in_allowlist -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "allowlist", "allowed"),
    [
        ("81.2.69.160", ["81.2.69.160"], True),
        ("81.2.69.160", ["81.2.69.0/24"], True),
        ("81.2.69.160", ["81.2.69.160/32"], True),
        ("81.2.69.161", ["81.2.69.160/32"], False),
        ("81.2.69.160", ["81.2.69.1/24"], True),  # host bits set: accepted as the network
        ("81.2.70.1", ["81.2.69.0/24"], False),
        ("81.2.69.160", ["10.0.0.0/8", "81.2.69.160"], True),
        ("81.2.69.160", [], False),
        ("2001:db8::5", ["2001:db8::/64"], True),
        ("2001:db8:1::5", ["2001:db8::/64"], False),
        ("::ffff:81.2.69.160", ["81.2.69.0/24"], True),  # dual-stack socket
        ("81.2.69.160", ["::/0"], False),  # no cross-family matches
        ("81.2.69.160", ["0.0.0.0/0"], True),
        ("81.2.69.160", [" 81.2.69.160 "], True),
        ("81.2.69.160", ["garbage", "81.2.69.0/24"], True),  # a bad entry does not break the rest
        ("81.2.69.160", ["garbage", "1.2.3.4/33"], False),
        (None, ["0.0.0.0/0"], False),
        ("", ["0.0.0.0/0"], False),
        ("not-an-ip", ["0.0.0.0/0"], False),
    ],
)
def test_ip_in_allowlist(ip, allowlist, allowed):
    assert ip_in_allowlist(ip, allowlist) is allowed


def test_ip_in_allowlist_accepts_any_iterable():
    assert ip_in_allowlist("81.2.69.160", (cidr for cidr in ["81.2.69.0/24"])) is True


# --- client_ip -----------------------------------------------------------------------------------


def _request(remote_addr: str, forwarded: str | None = None):
    extra = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    return RequestFactory().get("/click", REMOTE_ADDR=remote_addr, **extra)


@pytest.fixture
def trusted(settings):
    settings.TRUSTED_PROXIES = [PROXY_NET, ipaddress.ip_network("2001:db8:ffff::/48")]
    return settings


def test_without_a_proxy_remote_addr_is_the_client(trusted):
    assert client_ip(_request("81.2.69.160")) == "81.2.69.160"


def test_forwarded_for_from_an_untrusted_peer_is_ignored(trusted):
    assert client_ip(_request("93.184.215.14", "81.2.69.160")) == "93.184.215.14"
    assert client_ip(_request("93.184.215.14", "10.0.0.1")) == "93.184.215.14"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("81.2.69.160", "81.2.69.160"),
        ("81.2.69.160, 10.0.0.7", "81.2.69.160"),  # a second trusted hop
        ("6.6.6.6, 81.2.69.160", "81.2.69.160"),  # the spoofed left part is never reached
        ("6.6.6.6,81.2.69.160,10.9.9.9,10.8.8.8", "81.2.69.160"),
        ("81.2.69.160, , 10.0.0.7", "81.2.69.160"),  # empty entries are skipped
        ("2a00:1450:4009:81f::200e", "2a00:1450:4009:81f::200e"),
        ("2a00:1450:4009:81f::200e, 2001:db8:ffff::1", "2a00:1450:4009:81f::200e"),
        ("::ffff:81.2.69.160", "81.2.69.160"),
        ("81.2.69.160:51234", "81.2.69.160"),  # some proxies add the port
        ("[2a00:1450:4009:81f::200e]:443", "2a00:1450:4009:81f::200e"),
    ],
)
def test_forwarded_for_from_a_trusted_proxy_is_read_right_to_left(trusted, forwarded, expected):
    assert client_ip(_request("10.1.2.3", forwarded)) == expected


@pytest.mark.parametrize(
    "forwarded",
    [
        "",
        "   ",
        ",,,",
        "garbage",
        "81.2.69.160, garbage",  # the hop our proxy saw is unreadable: trust nothing left of it
        "unknown",
        "300.1.1.1",
        "10.0.0.7, 10.0.0.8",  # only trusted hops
        "x" * 10_000,
    ],
)
def test_unusable_forwarded_for_falls_back_to_remote_addr(trusted, forwarded):
    assert client_ip(_request("10.1.2.3", forwarded)) == "10.1.2.3"


def test_missing_forwarded_for_from_a_trusted_proxy(trusted):
    assert client_ip(_request("10.1.2.3")) == "10.1.2.3"


def test_very_long_forwarded_for_keeps_the_end_our_proxy_wrote(trusted):
    # A client padding the header with spoofed hops must not push the real one out of the window.
    assert client_ip(_request("10.1.2.3", "6.6.6.6," * 1000 + "81.2.69.160")) == "81.2.69.160"
    assert client_ip(_request("10.1.2.3", "6.6.6.6," * 1000 + "81.2.69.160, 10.0.0.9")) == (
        "81.2.69.160"
    )


@pytest.mark.parametrize(("remote_addr", "expected"), [("", None), ("nonsense", None)])
def test_unreadable_remote_addr(trusted, remote_addr, expected):
    assert client_ip(_request(remote_addr, "81.2.69.160")) is expected


def test_mapped_remote_addr_matches_an_ipv4_trusted_proxy(trusted):
    assert client_ip(_request("::ffff:10.1.2.3", "81.2.69.160")) == "81.2.69.160"


def test_nothing_trusted(settings):
    settings.TRUSTED_PROXIES = []
    assert client_ip(_request("127.0.0.1", "81.2.69.160")) == "127.0.0.1"


def test_default_setting_trusts_only_loopback(settings):
    proxies = settings.TRUSTED_PROXIES
    assert proxies == [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]
    assert client_ip(_request("127.0.0.1", "81.2.69.160")) == "81.2.69.160"
    assert client_ip(_request("::1", "81.2.69.160")) == "81.2.69.160"
    assert client_ip(_request("10.1.2.3", "81.2.69.160")) == "10.1.2.3"
