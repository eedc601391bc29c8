"""Postback parameters in every supported dialect, mapped to canonical names.

Canonical first; aliases let an advertiser moving from HasOffers, Everflow, Affise or Scaleo change
only the host of the postback URL they already fire.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus

from apps.common.text import text_clean
from apps.offers.models import ConversionStatus

POSTBACK_ALIASES: dict[str, tuple[str, ...]] = {
    # Canonical name first, then each platform's documented name for the same thing: HasOffers
    # (transaction_id, goal_id, adv_sub…adv_sub5, security_token), Everflow (transaction_id,
    # event_id, adv_event_id, sale_amount, order_id, coupon_code, verification_token), Affise
    # (clickid, goal, sum, action_id, promo_code, custom_field1…7, secure), Scaleo (click_id,
    # goal_id, goal_alias, amount, conv_status, adv_order_id, adv_param1…5, promo_code, token).
    "click_id": ("click_id", "transaction_id", "clickid", "cid"),
    "goal": ("goal", "goal_id", "event_id", "adv_event_id", "goal_alias"),
    "amount": ("amount", "sale_amount", "sum"),
    "order_id": ("order_id", "adv_sub", "action_id", "adv_order_id"),
    "status": ("status", "conv_status"),
    "token": ("token", "security_token", "verification_token", "secure"),
    "adv1": ("adv1", "adv_sub1", "adv_param1", "custom_field1"),
    "adv2": ("adv2", "adv_sub2", "adv_param2", "custom_field2"),
    "adv3": ("adv3", "adv_sub3", "adv_param3", "custom_field3"),
    "adv4": ("adv4", "adv_sub4", "adv_param4", "custom_field4"),
    "adv5": ("adv5", "adv_sub5", "adv_param5", "custom_field5"),
    "ip": ("ip", "user_ip"),
    # Lead data, when the advertiser sends it: only scored and hashed, never stored raw.
    "email": ("email", "lead_email"),
    "phone": ("phone", "lead_phone"),
    # Coupon-code attribution (no click): the code, and the offer when a code is on several.
    "coupon_code": ("coupon_code", "coupon", "promo_code"),
    "offer_id": ("offer_id", "oid"),
    # /postback/reversal (lead-owned entries: keep them): which conversion, and why.
    "conversion_id": ("conversion_id",),
    "reason": ("reason",),
}
# Names that carry the click id: a pixel takes it from the click cookie and ignores these.
CLICK_ID_NAMES = POSTBACK_ALIASES["click_id"]
# Longest value kept per field; longer identifiers are refused rather than cut (a cut id could
# collide with another), longer free text is cut.
MAX_ID_LENGTH = 255

STATUS_ALIASES: dict[str, ConversionStatus] = {
    "approved": ConversionStatus.APPROVED,
    "approve": ConversionStatus.APPROVED,
    "confirmed": ConversionStatus.APPROVED,
    "1": ConversionStatus.APPROVED,  # Affise
    "pending": ConversionStatus.PENDING,
    "hold": ConversionStatus.PENDING,
    "2": ConversionStatus.PENDING,  # Affise
    "5": ConversionStatus.PENDING,  # Affise "hold"
    "rejected": ConversionStatus.REJECTED,
    "declined": ConversionStatus.REJECTED,
    "3": ConversionStatus.REJECTED,  # Affise
}


# The goal names whose value may be the goal's id rather than its code: HasOffers' and Scaleo's
# goal_id, Everflow's event_id and adv_event_id carry a number.
GOAL_ID_NAMES = frozenset({"goal_id", "event_id", "adv_event_id"})


def _first_given(raw: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str]:
    """(name, stripped value) of the first of `names` given a non-blank value; ("", "") if none."""
    for name in names:
        candidate = raw.get(name)
        if candidate is not None and str(candidate).strip():
            return name, str(candidate).strip()
    return "", ""


def param_value(raw: Mapping[str, str], canonical: str) -> str:
    """One canonical parameter of postback_params_parse, without parsing the others."""
    return _first_given(raw, POSTBACK_ALIASES[canonical])[1]


def postback_params_parse(raw: Mapping[str, str]) -> dict[str, str]:
    """Canonical name -> stripped value ("" when absent). Raw id values are kept whole.
    `goal_by_id` is "1" when the goal came under a name that may carry its id (GOAL_ID_NAMES)."""
    params: dict[str, str] = {}
    for canonical, names in POSTBACK_ALIASES.items():
        name, params[canonical] = _first_given(raw, names)
        if canonical == "goal":
            params["goal_by_id"] = "1" if name in GOAL_ID_NAMES else ""
    for key in ("adv1", "adv2", "adv3", "adv4", "adv5", "reason"):
        params[key] = text_clean(params[key], MAX_ID_LENGTH)
    return params


# A parameter whose name contains one of these, in any case, is masked in the log: the token
# aliases, and also `TOKEN=` or `api_secret=` sent by mistake, which must not end up readable in
# the postback debugger. Lead data (email, phone) is personal: masked too, only its hash is kept.
_SECRET_MARKERS = ("token", "secret", "secure", "password", "passwd", "email", "phone")


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def params_for_log(raw: Mapping[str, str], *, limit: int = 50) -> dict[str, str]:
    """A bounded copy of the request parameters for the log, with secrets masked."""
    logged: dict[str, str] = {}
    for index, (key, value) in enumerate(raw.items()):
        if index >= limit:
            logged["…"] = f"{len(raw) - limit} more parameters"
            break
        name = text_clean(str(key), 64)
        secret = _is_secret(str(key)) or _is_secret(name)  # before and after cleaning
        logged[name] = "***" if secret else text_clean(str(value), 256)
    return logged


# The request headers the postback debugger shows; the signature is a credential for the length
# of its time window, so only its presence is shown.
LOGGED_HEADERS = (
    "user-agent",
    "content-type",
    "content-length",
    "referer",
    "x-forwarded-for",
    "x-opencpa-timestamp",
    "x-opencpa-signature",
)
_MASKED_HEADERS = frozenset({"x-opencpa-signature", "authorization", "cookie"})
MAX_LOGGED_BODY = 4096

# `name=value` pairs in a form body (or any text body that looks like one). Names are bounded, so
# a long run of text without "=" costs linear time, not quadratic.
_FORM_PAIR = re.compile(r"(?P<name>[^&=\s;]{1,256})=(?P<value>[^&\s;]*)")
# `"name": value` pairs in a JSON body (or one cut short or malformed), with a string or scalar
# value; an object or array value is not matched, so the pairs inside it are.
_JSON_PAIR = re.compile(
    r'"(?P<name>(?:[^"\\]|\\.){1,256})"\s*:\s*(?P<value>"(?:[^"\\]|\\.)*"?|[^,{}\[\]\s]+)'
)
_PART_NAME = re.compile(r'name="(?P<name>[^"]{0,256})"')
_BOUNDARY = re.compile(r'boundary="?(?P<boundary>[^";,\s]{1,200})')


def headers_for_log(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers worth showing in the debugger (lower-case names), bounded, credentials
    masked."""
    logged: dict[str, str] = {}
    for name in LOGGED_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        logged[name] = "***" if name in _MASKED_HEADERS else text_clean(str(value), 512)
    return logged


def _mask_json(value: object) -> object:
    """The JSON value with every secret-named key's value masked."""
    if isinstance(value, dict):
        return {
            key: "***" if _is_secret(str(key)) else _mask_json(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_json(item) for item in value]
    return value


def _secrets_left(value: object) -> bool:
    if isinstance(value, dict):
        return any(
            (item != "***") if _is_secret(str(key)) else _secrets_left(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_secrets_left(item) for item in value)
    return False


def _parse_json(text: str) -> object:
    """The JSON value, or None when the text is not JSON (or nests deeper than the parser)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _json_key(raw: str) -> str:
    try:
        return str(json.loads(f'"{raw}"'))  # "tok\\u0065n" is "token"
    except ValueError:
        return raw


def _mask_json_text(text: str) -> str:
    def pair(match: re.Match[str]) -> str:
        if not _is_secret(_json_key(match["name"])):
            return match[0]
        return match[0][: match.start("value") - match.start()] + '"***"'

    return _JSON_PAIR.sub(pair, text)


def _mask_form_text(text: str) -> str:
    """Names are percent-decoded first, so `%74oken=` is caught too."""

    def pair(match: re.Match[str]) -> str:
        return f"{match['name']}=***" if _is_secret(unquote_plus(match["name"])) else match[0]

    return _FORM_PAIR.sub(pair, text)


def _mask_multipart(text: str, boundary: str) -> str:
    """Each part whose name is a secret's keeps its headers; its value becomes ***."""
    delimiter = "--" + boundary
    parts = text.split(delimiter)
    for index, part in enumerate(parts[1:], start=1):
        head_end = part.find("\r\n\r\n")
        head = part if head_end < 0 else part[:head_end]
        named = _PART_NAME.search(head[:2048])
        if named is None or not _is_secret(named["name"]):
            continue
        if head_end < 0:  # cut short: nothing after the name can be trusted to be harmless
            parts[index] = part[: named.end()] + " ***"
        else:
            parts[index] = head + "\r\n\r\n***" + ("\r\n" if part.endswith("\r\n") else "")
    return delimiter.join(parts)


def body_for_log(body: bytes, *, content_type: str = "", limit: int = MAX_LOGGED_BODY) -> str:
    """The raw body as text for the debugger, as sent, with secrets masked (the names
    params_for_log masks), NULs and control characters dropped, cut to `limit` characters."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace")
    media_type = content_type.split(";", 1)[0].strip().lower()
    boundary = _BOUNDARY.search(content_type) if media_type == "multipart/form-data" else None
    parsed = _parse_json(text) if text.lstrip()[:1] in ("{", "[") else None
    if boundary is not None:
        masked = _mask_multipart(text, boundary["boundary"])
    elif isinstance(parsed, dict | list):
        masked = text
        if _secrets_left(parsed):
            masked = _mask_json_text(text)
            reparsed = _parse_json(masked)
            if reparsed is None or _secrets_left(reparsed):
                # The text could not be masked with certainty (a secret under an object, say):
                # show the masked structure instead of the text.
                masked = json.dumps(_mask_json(parsed), ensure_ascii=False)
    else:
        # A form, or text we cannot parse (a JSON body cut short, say): only what is shown is
        # masked, with a margin for a pair that starts before the cut.
        masked = _mask_json_text(_mask_form_text(text[: limit + 512]))
        if len(text) > limit + 512:
            masked = masked[:limit] + "…"
    cleaned = text_clean(masked, len(masked))
    if len(cleaned) > limit:
        return cleaned[:limit] + f"… ({len(body)} bytes in all)"
    return cleaned
