"""Network helpers: the client's IP behind trusted proxies, what counts as a public address, and
the query string of a WSGI request (Django's request.META is a WSGI environ)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Networks that ipaddress.is_global does not cover but that we never call or trust as public.
_EXTRA_BLOCKED = [
    ipaddress.ip_network("100.64.0.0/10"),  # CGNAT
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64: may wrap an internal IPv4
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64 (RFC 8215)
    ipaddress.ip_network("fec0::/10"),  # deprecated site-local, still routed inside some networks
    ipaddress.ip_network("3fff::/20"),  # documentation (RFC 9637)
]


# Longer than any address with a zone id and some spaces around it: not parsed (nor cached).
_MAX_IP_TEXT = 96


def ip_parse(value: str) -> IPAddress | None:
    """An IP address in canonical form: IPv4-mapped IPv6 unwrapped, an IPv6 zone id dropped.

    One address has one form, so allowlists, trusted proxies, GeoIP and the database all agree on
    it (PostgreSQL's inet refuses zone ids; "::ffff:1.2.3.4" is the IPv4 client of a dual-stack
    socket).
    """
    if len(value) > _MAX_IP_TEXT:  # the cache holds what it parsed: a postback's `ip` is anyone's
        return None
    return _ip_parse(value)


@lru_cache(maxsize=65_536)  # pure, and the click path parses the same few proxies' IPs again
def _ip_parse(value: str) -> IPAddress | None:
    value = value.strip()
    if ":" in value:  # only IPv6 has zone ids
        value = value.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_hop_parse(hop: str) -> IPAddress | None:
    """One X-Forwarded-For entry; some proxies add a port ("1.2.3.4:5678", "[2001:db8::1]:443")."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1:].split("]", 1)[0]
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    return ip_parse(hop)


def _in_any(
    address: IPAddress, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_ip(request: HttpRequest) -> str | None:
    return client_ip_from_meta(request.META)


def client_ip_from_meta(meta: Mapping[str, Any]) -> str | None:
    """The shopper's IP: REMOTE_ADDR, or X-Forwarded-For when the hop that set it is trusted.

    X-Forwarded-For is read right to left and the first address not in TRUSTED_PROXIES wins, so a
    client cannot spoof its IP by sending its own header through our proxy. `meta` is a WSGI
    environ (Django's request.META is one).
    """
    remote = ip_parse(meta.get("REMOTE_ADDR", ""))
    if remote is None:
        return None
    trusted = settings.TRUSTED_PROXIES
    if not _in_any(remote, trusted):
        return str(remote)
    # Keep the right end: that is what our proxies wrote; the left end is whatever the client sent.
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")[-2048:]
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _forwarded_hop_parse(hop)
        if address is None:
            break
        if not _in_any(address, trusted):
            return str(address)
    return str(remote)


def request_is_https(meta: Mapping[str, Any]) -> bool:
    """Whether the shopper's connection was HTTPS: our own TLS, or a TLS-terminating proxy in
    TRUSTED_PROXIES that says so (X-Forwarded-Proto; its right-most value, the one it wrote).
    Anyone else's X-Forwarded-Proto is ignored."""
    if meta.get("wsgi.url_scheme") == "https":
        return True
    remote = ip_parse(meta.get("REMOTE_ADDR", ""))
    if remote is None or not _in_any(remote, settings.TRUSTED_PROXIES):
        return False
    proto = meta.get("HTTP_X_FORWARDED_PROTO", "").rsplit(",", 1)[-1]
    return proto.strip().lower() == "https"


def ip_is_public(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses we may connect to."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return ip_is_public(address.ipv4_mapped)
        if address.sixtofour is not None or address.teredo is not None:
            return False
    if not address.is_global or address.is_multicast or address.is_reserved:
        return False
    return not _in_any(address, _EXTRA_BLOCKED)


def ip_in_allowlist(ip: str | None, allowlist: Iterable[str]) -> bool:
    """Whether ip is one of the IPs or CIDRs listed; entries that do not parse match nothing."""
    address = ip_parse(ip or "")
    if address is None:
        return False
    for entry in allowlist:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            continue
        if _in_any(address, [network]):
            return True
    return False


def _query_string_bytes(meta: Mapping[str, Any]) -> bytes:
    """The query string's bytes as sent: WSGI hands them over as latin-1 (PEP 3333)."""
    value = str(meta.get("QUERY_STRING", ""))
    try:
        return value.encode("iso-8859-1")
    except UnicodeEncodeError:  # not a WSGI string (ASGI decodes it as UTF-8)
        return value.encode("utf-8", "surrogateescape")


def raw_query_string(meta: Mapping[str, Any]) -> str:
    """The query string exactly as sent, for HMAC signatures: read as UTF-8, any invalid byte
    kept as a surrogate (so the signature is still computed over the very bytes sent)."""
    return _query_string_bytes(meta).decode("utf-8", "surrogateescape")


def query_params(meta: Mapping[str, Any]) -> dict[str, str]:
    """The query string's parameters as request.GET.get gives them (the last value of a repeated
    name; UTF-8, or Latin-1 when it is not UTF-8, as Django's QueryDict decodes it), without
    building a Django request. Raises ValueError over DATA_UPLOAD_MAX_NUMBER_FIELDS."""
    raw = _query_string_bytes(meta)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-1")
    return dict(
        parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    )
