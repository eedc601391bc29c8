"""Lead data the advertiser may send with a postback: checks and hashes. Raw values never leave
this module; only a keyed hash is stored, enough to see the same email or phone again."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from functools import cache

import phonenumbers
from disposable_email_domains import blocklist as _disposable_domains
from django.conf import settings

# Deliberately plain: one @, a dot-separated domain with a 2+ letter TLD, no spaces.
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,63}"
)
MAX_LEAD_FIELD = 254


@dataclass(frozen=True, slots=True)
class EmailCheck:
    valid: bool
    domain: str
    disposable: bool


def email_normalise(email: str) -> str:
    return email.strip().lower()


def email_check(email: str) -> EmailCheck:
    value = email_normalise(email)
    if len(value) > MAX_LEAD_FIELD or not _EMAIL.fullmatch(value):
        return EmailCheck(valid=False, domain="", disposable=False)
    domain = value.rsplit("@", 1)[1]
    return EmailCheck(valid=True, domain=domain, disposable=domain_is_disposable(domain))


def domain_is_disposable(domain: str) -> bool:
    """By the maintained disposable-email-domains list, including subdomains of listed ones."""
    parts = domain.split(".")
    return any(".".join(parts[i:]) in _disposable_domains for i in range(len(parts) - 1))


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    valid: bool
    e164: str
    region: str


def phone_check(phone: str, *, country: str) -> PhoneCheck:
    """Valid for the click's country (or, written with +, valid anywhere and in that country)."""
    value = phone.strip()
    region = country.upper() if len(country) == 2 else None
    if not value or len(value) > 32:
        return PhoneCheck(valid=False, e164="", region="")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return PhoneCheck(valid=False, e164="", region="")
    number_region = phonenumbers.region_code_for_number(number) or ""
    # Regions sharing a calling code count as the same country (+44: GB, JE, GG, IM).
    valid = phonenumbers.is_valid_number(number) and (
        region is None or number.country_code == phonenumbers.country_code_for_region(region)
    )
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return PhoneCheck(valid=valid, e164=e164, region=number_region)


@cache
def _hash_key() -> bytes:
    return hashlib.sha256(("opencpa-lead:" + settings.SECRET_KEY).encode()).digest()


@cache
def _keyed() -> hmac.HMAC:
    return hmac.new(_hash_key(), digestmod=hashlib.sha256)


def lead_hash(value: str) -> str:
    """A keyed hash (HMAC-SHA256): equal inputs match, the value cannot be looked up by hash."""
    # A copy of the keyed state costs 30% less than keying anew (the drain keys every click).
    keyed = _keyed().copy()
    keyed.update(value.encode())
    return keyed.hexdigest()


def email_key(email: str) -> str:
    """The keyed hash of a valid email (case and outer spaces aside); empty for anything else."""
    if not email.strip() or not email_check(email).valid:
        return ""
    return lead_hash("email:" + email.strip().lower())


def device_key(user_agent: str, ip: str | None) -> str:
    """The keyed hash of a visitor's user agent and IP, to see the same device again: the
    fingerprint's ua_ip_hash, and the click's (computed when the click is stored). The IP in its
    one canonical form, whichever way it was written. Empty without an IP."""
    if not ip:
        return ""
    if ":" in ip:  # IPv6 has several spellings; an IPv4 address has one (PostgreSQL's too)
        with contextlib.suppress(ValueError):  # not an address after all: hashed as written
            ip = str(ipaddress.ip_address(ip))
    return lead_hash(f"uaip:{user_agent}|{ip}")
