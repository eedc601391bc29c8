"""Is an IP in a data centre? ASN names come from the ASN database geoip2fast ships in its wheel
(geoip2fast-asn-ipv6.dat.gz, IPv4 and IPv6; no download at run time). Which ASNs are hosting
providers is our curated list below: the largest clouds, VPS and server hosts by announced address
space (names as the ASN data spells them). A residential ISP never matches."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path

import geoip2fast
from geoip2fast import GeoIP2Fast

_ASN_DATA = Path(geoip2fast.__file__).parent / "geoip2fast-asn-ipv6.dat.gz"

# Matched case-insensitively against the ASN organisation name, at a word start.
HOSTING_ASN_PATTERNS = (
    "AMAZON",
    "AWS",
    "GOOGLE-CLOUD",
    "GOOGLE",  # Google's own ASN serves its cloud; Google Fiber is GOOGLE-FIBER (excluded below)
    "MICROSOFT",
    "DIGITALOCEAN",
    "LINODE",
    "AKAMAI",
    "OVH",
    "HETZNER",
    "SCALEWAY",
    "ONLINE S.A.S",
    "CHOOPA",
    "VULTR",
    "CONTABO",
    "LEASEWEB",
    "ORACLE",
    "ALIBABA",
    "TENCENT",
    "HUAWEI CLOUDS",
    "CLOUDFLARE",
    "FASTLY",
    "M247",
    "DATACAMP",
    "HOSTINGER",
    "IONOS",
    "1&1",
    "HOSTWINDS",
    "COLOCROSSING",
    "PSYCHZ",
    "QUADRANET",
    "SERVERS.COM",
    "CHOOPA",
    "IBM-CLOUD",
    "SOFTLAYER",
    "RACKSPACE",
    "EQUINIX",
    "HOSTHATCH",
    "NETCUP",
    "SELECTEL",
    "TIMEWEB",
    "KAMATERA",
    "UPCLOUD",
    "G-CORE",
    "GCORE",
    "ZENLAYER",
    "CDN77",
    "DATAPACKET",
    "PACKETHUB",
    "TZULO",
)
_NOT_HOSTING = ("GOOGLE-FIBER",)
_HOSTING = re.compile(
    r"(?<![A-Z0-9])(" + "|".join(re.escape(p) for p in HOSTING_ASN_PATTERNS) + ")", re.IGNORECASE
)


@cache
def _asn_db() -> GeoIP2Fast:
    return GeoIP2Fast(geoip2fast_data_file=str(_ASN_DATA))


@lru_cache(maxsize=65_536)
def asn_name_for_ip(ip: str | None) -> str:
    """The ASN's organisation name, or "" when unknown (private ranges, bad input)."""
    if not ip:
        return ""
    try:
        name = _asn_db().lookup(ip).asn_name
    except Exception:
        return ""
    return name if isinstance(name, str) and name != "IANA.ORG" else ""


@lru_cache(maxsize=4096)  # a few thousand networks send nearly all traffic
def asn_is_hosting(asn_name: str) -> bool:
    upper = asn_name.upper()
    if any(name in upper for name in _NOT_HOSTING):
        return False
    return bool(asn_name) and bool(_HOSTING.search(asn_name))
