"""Quality signals: each a small function that returns the Signal it saw (a stable reason code and
the evidence) or None. They never raise on bad input: missing or garbage data means no signal.

Inline signals run with the postback; behavioural ones (per affiliate and sub id) run in the
re-score job (apps.quality.behaviour).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from apps.common.db import fetchone_prepared
from apps.quality.hosting import asn_is_hosting, asn_name_for_ip
from apps.quality.leads import email_check, phone_check


class Reason:
    # Inline (with the postback). The first four are the foundation's codes, same meaning.
    TOO_FAST = "click_to_conversion_too_fast"
    REPEAT_IP = "repeat_ip_on_offer"
    BOT_USER_AGENT = "bot_user_agent"
    COUNTRY_MISMATCH = "country_mismatch"
    TOO_SLOW = "click_to_conversion_too_slow"
    REPEAT_IP_AFFILIATE = "repeat_ip_on_affiliate"
    DATACENTER_IP = "datacenter_ip"
    COUNTRY_NOT_TARGETED = "country_not_targeted"
    NON_BROWSER = "non_browser_click"
    UA_IP_ACROSS_SUBS = "same_device_across_sub_ids"
    EMAIL_INVALID = "email_invalid"
    EMAIL_DISPOSABLE = "email_disposable"
    PHONE_INVALID = "phone_invalid"
    EMAIL_SEEN = "email_seen_on_offer"
    PHONE_SEEN = "phone_seen_on_offer"
    # Behavioural (the re-score job, per affiliate + sub id).
    CR_ABOVE_NORM = "conversion_rate_above_norm"
    TIMES_BUNCHED = "conversion_times_bunched"
    TIMES_FLAT = "conversion_times_spread_flat"
    VOLUME_SPIKE = "volume_spike"
    IP_CLUSTER = "ip_cluster_on_offer"


# Points each signal takes off 100. A signal strong enough to hold a conversion on its own at the
# default threshold (50) weighs more than 50; weaker ones only hold in combination.
DEFAULT_WEIGHTS: dict[str, int] = {
    Reason.TOO_FAST: 55,
    Reason.REPEAT_IP: 55,
    Reason.BOT_USER_AGENT: 60,
    Reason.COUNTRY_MISMATCH: 25,
    Reason.TOO_SLOW: 30,
    Reason.REPEAT_IP_AFFILIATE: 25,
    Reason.DATACENTER_IP: 55,
    Reason.COUNTRY_NOT_TARGETED: 40,
    Reason.NON_BROWSER: 55,
    Reason.UA_IP_ACROSS_SUBS: 55,
    Reason.EMAIL_INVALID: 55,
    Reason.EMAIL_DISPOSABLE: 55,
    Reason.PHONE_INVALID: 55,
    Reason.EMAIL_SEEN: 55,
    Reason.PHONE_SEEN: 55,
    Reason.CR_ABOVE_NORM: 35,
    Reason.TIMES_BUNCHED: 55,
    Reason.TIMES_FLAT: 55,
    Reason.VOLUME_SPIKE: 20,
    Reason.IP_CLUSTER: 55,
}
BEHAVIOURAL_REASONS = frozenset(
    {
        Reason.CR_ABOVE_NORM,
        Reason.TIMES_BUNCHED,
        Reason.TIMES_FLAT,
        Reason.VOLUME_SPIKE,
        Reason.IP_CLUSTER,
    }
)

REPEAT_IP_WINDOW = timedelta(hours=24)
REPEAT_IP_LIMIT = 1  # one earlier conversion from the same IP on the offer is already suspicious
REPEAT_IP_AFFILIATE_LIMIT = 2  # on the affiliate's other offers: a household may convert twice
SUBS_WINDOW = timedelta(hours=24)
SUBS_LIMIT = 3  # the same device converting under this many sub ids (this one included)


@dataclass(frozen=True)
class Signal:
    code: str
    evidence: dict[str, object] = field(default_factory=dict)


# --- time ----------------------------------------------------------------------------------------


def signal_too_fast(*, seconds: float, min_seconds: float) -> Signal | None:
    if seconds < min_seconds:
        return Signal(Reason.TOO_FAST, {"seconds": round(seconds, 3), "min_seconds": min_seconds})
    return None


def signal_too_slow(*, seconds: float, max_seconds: float | None) -> Signal | None:
    if max_seconds is not None and seconds > max_seconds:
        return Signal(Reason.TOO_SLOW, {"seconds": round(seconds, 3), "max_seconds": max_seconds})
    return None


# --- IP ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class History:
    """What the database already holds that the inline signals compare a conversion with, read
    in one statement (history_read): capped counts, never more rows than a signal looks at."""

    ip_on_offer: int = 0  # conversions from this IP on the offer, other clicks, last 24 h
    ip_on_affiliate: int = 0  # ... on the affiliate's other offers
    device_subs: frozenset[str] = frozenset()  # sub1s this UA+IP converted under, last 24 h
    email_seen: int = 0  # earlier conversions on the offer with this email (hash)
    phone_seen: int = 0


# Each part is skipped (a constant) when its key is empty. click_id '' (a coupon conversion):
# every other conversion counts, coupon ones included. The IP indexes (ip/click_ip, created_at)
# serve both the offer and the affiliate count. Each {slot} is a parameter, or, when the history
# is read with the click (history_with_click), the click's own column.
_HISTORY_PARTS = """
  CASE WHEN {ip} IS NULL THEN 0 ELSE (
    SELECT count(*) FROM (
      SELECT 1 FROM conversions_conversion
      WHERE (ip = {ip} OR click_ip = {ip}) AND created_at >= {ip_since}
        AND offer_id = {offer_id} AND ({click_id} = '' OR click_id <> {click_id})
      LIMIT 10) AS found) END,
  CASE WHEN {ip} IS NULL THEN 0 ELSE (
    SELECT count(*) FROM (
      SELECT 1 FROM conversions_conversion
      WHERE (ip = {ip} OR click_ip = {ip}) AND created_at >= {ip_since}
        AND affiliate_id = {affiliate_id} AND offer_id <> {offer_id}
        AND ({click_id} = '' OR click_id <> {click_id})
      LIMIT 10) AS found) END,
  CASE WHEN {ua_ip_hash} = '' THEN ARRAY[]::text[] ELSE ARRAY(
    SELECT DISTINCT sub1 FROM quality_leadfingerprint
    WHERE affiliate_id = {affiliate_id} AND ua_ip_hash = {ua_ip_hash}
      AND created_at >= {subs_since}
    LIMIT 50) END,
  CASE WHEN {email_hash} = '' THEN 0 ELSE (
    SELECT count(*) FROM quality_leadfingerprint
    WHERE offer_id = {offer_id} AND email_hash = {email_hash} AND email_hash <> '') END,
  CASE WHEN {phone_hash} = '' THEN 0 ELSE (
    SELECT count(*) FROM quality_leadfingerprint
    WHERE offer_id = {offer_id} AND phone_hash = {phone_hash} AND phone_hash <> '') END"""
_SLOT = re.compile(r"\{(\w+)\}")
_CLICK_COLUMNS = {
    "ip": "tracking_click.ip",
    "offer_id": "tracking_click.offer_id",
    "affiliate_id": "tracking_click.affiliate_id",
    "click_id": "tracking_click.click_id",
    "ua_ip_hash": "tracking_click.ua_ip_hash",
}


@cache
def _history_template(*, from_click: bool) -> tuple[str, tuple[str, ...]]:
    """_HISTORY_PARTS with its slots filled. Alone: named parameters. Read with the click: the
    click's columns where it has them, positional parameters for the rest (their names are
    returned in order: the click's statement is positional). The IP is typed: it may be NULL."""
    names: list[str] = []

    def fill(slot: re.Match[str]) -> str:
        name = slot.group(1)
        if not from_click:
            placeholder = f"%({name})s"
        elif name in _CLICK_COLUMNS:
            return _CLICK_COLUMNS[name]
        else:
            names.append(name)
            placeholder = "%s"
        return placeholder + "::inet" if name == "ip" else placeholder

    return _SLOT.sub(fill, _HISTORY_PARTS), tuple(names)


def history_read(
    *,
    ip: str | None,
    offer_id: int,
    affiliate_id: int,
    click_id: str,
    ua_ip_hash: str,
    email_hash: str,
    phone_hash: str,
    now: datetime,
) -> History:
    """One round trip for every signal that compares with earlier conversions."""
    params = {
        "ip": ip or None,
        "ip_since": now - REPEAT_IP_WINDOW,
        "offer_id": offer_id,
        "affiliate_id": affiliate_id,
        "click_id": click_id,
        "ua_ip_hash": ua_ip_hash,
        "subs_since": now - SUBS_WINDOW,
        "email_hash": email_hash,
        "phone_hash": phone_hash,
    }
    row = fetchone_prepared("SELECT" + _history_template(from_click=False)[0], params)
    if row is None:  # cannot happen: a SELECT of constants and aggregates has its one row
        return History()
    return history_from_values(row)


def history_with_click(*, email_hash: str, now: datetime) -> tuple[str, list[Any]]:
    """The history as select-list expressions (from ", ") for the statement that reads the click
    itself (apps.tracking.click_store.click_get_with), and their parameters: the IP, the device
    key, the offer and the affiliate are the click's. For a conversion that brings no IP and no
    phone of its own (else: history_read). Read back with history_from_values."""
    values = {
        "ip_since": now - REPEAT_IP_WINDOW,
        "subs_since": now - SUBS_WINDOW,
        "email_hash": email_hash,
        "phone_hash": "",
    }
    sql, names = _history_template(from_click=True)
    return "," + sql, [values[name] for name in names]


def history_from_values(values: Sequence[Any]) -> History:
    ip_on_offer, ip_on_affiliate, device_subs, email_seen, phone_seen = values
    return History(
        ip_on_offer=ip_on_offer,
        ip_on_affiliate=ip_on_affiliate,
        device_subs=frozenset(device_subs),
        email_seen=email_seen,
        phone_seen=phone_seen,
    )


def signal_repeat_ip_on_offer(*, ip: str | None, history: History) -> Signal | None:
    """The same IP (shopper's or click's) converted on the offer within 24 h on another click."""
    if ip and history.ip_on_offer >= REPEAT_IP_LIMIT:
        return Signal(Reason.REPEAT_IP, {"ip": ip, "earlier_conversions": history.ip_on_offer})
    return None


def signal_repeat_ip_on_affiliate(*, ip: str | None, history: History) -> Signal | None:
    """The same IP converted on the affiliate's other offers within 24 h, more than twice."""
    if ip and history.ip_on_affiliate >= REPEAT_IP_AFFILIATE_LIMIT:
        return Signal(
            Reason.REPEAT_IP_AFFILIATE, {"ip": ip, "earlier_conversions": history.ip_on_affiliate}
        )
    return None


def signal_datacenter_ip(*, click_ip: str | None, conversion_ip: str | None) -> Signal | None:
    """The click or the conversion came from a hosting provider's network, not a home or phone."""
    for source, ip in (("click", click_ip), ("conversion", conversion_ip)):
        asn = asn_name_for_ip(ip)
        if asn_is_hosting(asn):
            return Signal(Reason.DATACENTER_IP, {"ip": ip, "asn": asn, "source": source})
    return None


def signal_country_not_targeted(
    *, click_country: str, allowed: list[str], blocked: list[str]
) -> Signal | None:
    if not click_country:
        return None
    if (allowed and click_country not in allowed) or click_country in blocked:
        return Signal(
            Reason.COUNTRY_NOT_TARGETED,
            {"country": click_country, "allowed": list(allowed), "blocked": list(blocked)},
        )
    return None


def signal_country_mismatch(*, click_country: str, conversion_country: str) -> Signal | None:
    if click_country and conversion_country and click_country != conversion_country:
        return Signal(
            Reason.COUNTRY_MISMATCH,
            {"click_country": click_country, "conversion_country": conversion_country},
        )
    return None


# --- device --------------------------------------------------------------------------------------


def signal_bot_user_agent(*, is_bot: bool, user_agent: str) -> Signal | None:
    if is_bot:
        return Signal(Reason.BOT_USER_AGENT, {"user_agent": user_agent[:200]})
    return None


def signal_non_browser(*, non_browser: bool, is_bot: bool) -> Signal | None:
    """Empty UA, HEAD, a prefetch, or a link a page's image, script or iframe asked for (already
    covered when the UA is a known bot)."""
    if non_browser and not is_bot:
        return Signal(Reason.NON_BROWSER, {})
    return None


def signal_same_device_across_subs(*, sub1: str, history: History) -> Signal | None:
    """The same user agent + IP converting under many sub ids of one affiliate within 24 h."""
    if not history.device_subs:
        return None
    subs = history.device_subs | {sub1}
    if len(subs) >= SUBS_LIMIT:
        return Signal(Reason.UA_IP_ACROSS_SUBS, {"sub_ids": len(subs)})
    return None


# --- lead data -----------------------------------------------------------------------------------


def signal_email(*, email: str) -> Signal | None:
    """Syntactically invalid, or on a disposable domain. No email sent: no signal."""
    if not email.strip():
        return None
    check = email_check(email)
    if not check.valid:
        return Signal(Reason.EMAIL_INVALID, {"length": len(email)})
    if check.disposable:
        return Signal(Reason.EMAIL_DISPOSABLE, {"domain": check.domain})
    return None


def signal_phone(*, phone: str, country: str) -> Signal | None:
    """Not a valid number for the click's country. No phone sent: no signal."""
    if not phone.strip():
        return None
    check = phone_check(phone, country=country)
    if not check.valid:
        return Signal(Reason.PHONE_INVALID, {"country": country, "number_region": check.region})
    return None


def signal_lead_seen(*, history: History) -> list[Signal]:
    """The same email or phone (by hash) already converted on the offer."""
    return [
        Signal(code, {"earlier_conversions": earlier})
        for code, earlier in (
            (Reason.EMAIL_SEEN, history.email_seen),
            (Reason.PHONE_SEEN, history.phone_seen),
        )
        if earlier
    ]
