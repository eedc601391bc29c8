"""Quality signals: each a small function that returns the Signal it saw (a stable reason code and
the evidence) or None. They never raise on bad input: missing or garbage data means no signal.

Inline signals run with the postback; behavioural ones (per affiliate and sub id) run in the
re-score job (apps.quality.behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet

from apps.conversions.models import Conversion
from apps.quality.hosting import asn_is_hosting, asn_name_for_ip
from apps.quality.leads import email_check, phone_check
from apps.quality.models import LeadFingerprint


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


def _other_clicks(conversions: QuerySet[Any], click_id: str) -> QuerySet[Any]:
    """Conversions on other clicks than this one. A coupon conversion has no click (""): then
    every other conversion counts, coupon ones included."""
    return conversions.exclude(click_id=click_id) if click_id else conversions


def signal_repeat_ip_on_offer(
    *, ip: str | None, offer_id: int, click_id: str, now: datetime
) -> Signal | None:
    """The same IP (shopper's or click's) converted on the offer within 24 h on another click."""
    if not ip:
        return None
    earlier = _other_clicks(
        Conversion.objects.filter(
            Q(ip=ip) | Q(click_ip=ip), offer_id=offer_id, created_at__gte=now - REPEAT_IP_WINDOW
        ),
        click_id,
    ).values_list("pk", flat=True)
    found = list(earlier[:10])
    if len(found) >= REPEAT_IP_LIMIT:
        return Signal(Reason.REPEAT_IP, {"ip": ip, "earlier_conversions": len(found)})
    return None


def signal_repeat_ip_on_affiliate(
    *, ip: str | None, affiliate_id: int, offer_id: int, click_id: str, now: datetime
) -> Signal | None:
    """The same IP converted on the affiliate's other offers within 24 h, more than twice."""
    if not ip:
        return None
    earlier = (
        Conversion.objects.filter(
            Q(ip=ip) | Q(click_ip=ip),
            affiliate_id=affiliate_id,
            created_at__gte=now - REPEAT_IP_WINDOW,
        )
        .exclude(offer_id=offer_id)
        .values_list("pk", flat=True)
    )
    earlier = _other_clicks(earlier, click_id)
    found = list(earlier[:10])
    if len(found) >= REPEAT_IP_AFFILIATE_LIMIT:
        return Signal(Reason.REPEAT_IP_AFFILIATE, {"ip": ip, "earlier_conversions": len(found)})
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
    """Empty UA, HEAD or a prefetch (already covered when the UA is a known bot)."""
    if non_browser and not is_bot:
        return Signal(Reason.NON_BROWSER, {})
    return None


def signal_same_device_across_subs(
    *, ua_ip_hash: str, affiliate_id: int, sub1: str, now: datetime
) -> Signal | None:
    """The same user agent + IP converting under many sub ids of one affiliate within 24 h."""
    if not ua_ip_hash:
        return None
    subs = set(
        LeadFingerprint.objects.filter(
            affiliate_id=affiliate_id, ua_ip_hash=ua_ip_hash, created_at__gte=now - SUBS_WINDOW
        )
        .values_list("sub1", flat=True)
        .distinct()[:50]
    )
    subs.add(sub1)
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


def signal_lead_seen(*, offer_id: int, email_hash: str, phone_hash: str) -> list[Signal]:
    """The same email or phone (by hash) already converted on the offer."""
    signals = []
    for code, name, value in (
        (Reason.EMAIL_SEEN, "email_hash", email_hash),
        (Reason.PHONE_SEEN, "phone_hash", phone_hash),
    ):
        if not value:
            continue
        earlier = LeadFingerprint.objects.filter(offer_id=offer_id, **{name: value}).count()
        if earlier:
            signals.append(Signal(code, {"earlier_conversions": earlier}))
    return signals
