"""What we learn about a click from its IP and user agent, using maintained data packages."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from crawlerdetect import CrawlerDetect
from geoip2fast import GeoIP2Fast
from ua_parser import parse as ua_parse

from apps.offers.models import DeviceType, OsFamily
from apps.quality.leads import device_key


@cache
def _geoip() -> GeoIP2Fast:
    return GeoIP2Fast()


@cache
def _crawlers() -> CrawlerDetect:
    return CrawlerDetect()


@lru_cache(maxsize=65_536)
def country_for_ip(ip: str | None) -> str:
    """ISO country code, or "" when unknown (private ranges, bad input)."""
    if not ip:
        return ""
    try:
        code = _geoip().lookup(ip).country_code
    except Exception:
        return ""
    return code if isinstance(code, str) and len(code) == 2 and code.isalpha() else ""


def user_agent_is_bot(user_agent: str) -> bool:
    """Crawlers and bots by the maintained CrawlerDetect list; an empty UA is not a browser."""
    if not user_agent.strip():
        return True
    return bool(_crawlers().isCrawler(user_agent))


@dataclass(frozen=True, slots=True)
class Device:
    device_type: str
    os: str
    browser: str


_DESKTOP_OS = {
    "Windows": "windows",
    "Mac OS X": "macos",
    "Linux": "linux",
    "Ubuntu": "linux",
    "Fedora": "linux",
    "Chrome OS": "linux",
    "FreeBSD": "other",
}
_TABLET_FAMILIES = ("iPad", "Kindle", "Tablet", "Nexus 7", "Nexus 9", "Nexus 10")
_NOT_A_HANDSET = ("Other", "", "Spider")  # ua-parser's device families that name no device


@lru_cache(maxsize=50_000)
def device_for_user_agent(user_agent: str) -> Device:
    """Device type, OS family and browser family from the maintained ua-parser rules.

    Cached per UA string: real traffic repeats a small set of user agents.
    """
    if not user_agent:
        return Device(DeviceType.OTHER, OsFamily.OTHER, "")
    parsed = ua_parse(user_agent)
    os_family = parsed.os.family if parsed.os else ""
    device_family = parsed.device.family if parsed.device else ""
    browser = (parsed.user_agent.family if parsed.user_agent else "")[:32]
    os_code: str
    if os_family in {"iOS", "iPadOS"}:
        os_code = OsFamily.IOS
    elif os_family == "Android":
        os_code = OsFamily.ANDROID
    else:
        os_code = _DESKTOP_OS.get(os_family, OsFamily.OTHER)
    if any(name in device_family for name in _TABLET_FAMILIES) or (
        os_code == OsFamily.ANDROID and "Mobile" not in user_agent
    ):
        device_type = DeviceType.TABLET
    elif os_code in (OsFamily.IOS, OsFamily.ANDROID):
        device_type = DeviceType.MOBILE
    elif os_code in (OsFamily.WINDOWS, OsFamily.MACOS, OsFamily.LINUX):
        # Before the device-family test: ua-parser names Macs' device "Mac".
        device_type = DeviceType.DESKTOP
    elif device_family not in _NOT_A_HANDSET:
        device_type = DeviceType.MOBILE  # a named handset on another OS (KaiOS, Windows Phone)
    else:
        device_type = DeviceType.OTHER
    return Device(device_type, os_code, browser)


@lru_cache(maxsize=50_000)
def user_agent_is_bot_cached(user_agent: str) -> bool:
    return user_agent_is_bot(user_agent)


def click_enrich(click: dict[str, Any], *, buffered_unique: bool) -> None:
    """Fill in what the redirect did not need: bot flag, device, OS, browser, unique.

    A bot or non-browser click keeps its redirect but is never unique (and so never billable).
    """
    user_agent = click.get("user_agent", "")
    click["is_bot"] = user_agent_is_bot_cached(user_agent)
    device = device_for_user_agent(user_agent)
    click["device_type"], click["os"], click["browser"] = (
        device.device_type,
        device.os,
        device.browser,
    )
    if not click.get("country"):
        click["country"] = country_for_ip(click.get("ip"))
    click["ua_ip_hash"] = device_key(user_agent, click.get("ip"))
    click["is_unique"] = (
        buffered_unique
        and not click["is_bot"]
        and not click.get("non_browser", False)
        and not click.get("fallback_reason")
    )
