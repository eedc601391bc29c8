"""Postback parameters in every supported dialect, mapped to canonical names.

Canonical first; aliases let an advertiser moving from HasOffers, Everflow, Affise or Scaleo change
only the host of the postback URL they already fire.
"""

from __future__ import annotations

from collections.abc import Mapping

from apps.common.text import text_clean
from apps.offers.models import ConversionStatus

POSTBACK_ALIASES: dict[str, tuple[str, ...]] = {
    "click_id": ("click_id", "transaction_id", "clickid", "cid"),
    "goal": ("goal", "goal_id", "event_id", "adv_event_id"),
    "amount": ("amount", "sale_amount", "sum"),
    "order_id": ("order_id", "adv_sub"),
    "status": ("status", "conv_status"),
    "token": ("token", "security_token", "verification_token", "secure"),
    "adv1": ("adv1", "adv_sub1"),
    "adv2": ("adv2", "adv_sub2"),
    "adv3": ("adv3", "adv_sub3"),
    "adv4": ("adv4", "adv_sub4"),
    "adv5": ("adv5", "adv_sub5"),
    "ip": ("ip", "user_ip"),
    # Lead data, when the advertiser sends it: only scored and hashed, never stored raw.
    "email": ("email", "lead_email"),
    "phone": ("phone", "lead_phone"),
    # Coupon-code attribution (no click): the code, and the offer when a code is on several.
    "coupon_code": ("coupon_code", "coupon"),
    "offer_id": ("offer_id", "oid"),
}
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


def postback_params_parse(raw: Mapping[str, str]) -> dict[str, str]:
    """Canonical name -> stripped value ("" when absent). Raw id values are kept whole."""
    params: dict[str, str] = {}
    for canonical, names in POSTBACK_ALIASES.items():
        value = ""
        for name in names:
            candidate = raw.get(name)
            if candidate is not None and str(candidate).strip():
                value = str(candidate).strip()
                break
        params[canonical] = value
    for key in ("adv1", "adv2", "adv3", "adv4", "adv5"):
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
