"""Money: Decimal amounts with a currency, and the one rounding rule.

Rounding rule (the only one): half-up to the currency's minor unit, applied once per stored amount.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import models


class Currency(models.TextChoices):
    USD = "USD", "US dollar"
    EUR = "EUR", "Euro"
    GBP = "GBP", "Pound sterling"
    CAD = "CAD", "Canadian dollar"
    AUD = "AUD", "Australian dollar"
    BRL = "BRL", "Brazilian real"
    INR = "INR", "Indian rupee"
    JPY = "JPY", "Japanese yen"
    KRW = "KRW", "South Korean won"


# ISO 4217 minor units; anything not listed has two.
_MINOR_UNITS = {"JPY": 0, "KRW": 0}

_AMOUNT_CHARS = frozenset("0123456789.")

# Largest amount we accept from the outside (a sale amount in a postback, say).
MAX_AMOUNT = Decimal("1000000000")

# Column shape shared by every stored amount.
AMOUNT_FIELD_KWARGS: dict[str, Any] = {"max_digits": 14, "decimal_places": 2}


class InvalidAmount(ValueError):
    pass


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def money_round(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit."""
    exponent = Decimal(1).scaleb(-minor_units(currency))
    return amount.quantize(exponent, rounding=ROUND_HALF_UP)


def amount_parse(raw: str) -> Decimal:
    """Parse an amount sent by a partner: plain decimal notation, finite, 0 <= x <= MAX_AMOUNT.

    Locale forms ("1.000,50", "1,000.50"), exponents, NaN and infinities are refused rather than
    guessed at: a wrong guess is a wrong payout. Only ASCII digits count (str.isdigit() would let
    "²" and other scripts' digits through to Decimal).
    """
    text = raw.strip()
    if not text or len(text) > 32 or not set(text) <= _AMOUNT_CHARS:
        raise InvalidAmount(raw)
    if text.count(".") > 1 or text.startswith(".") or text.endswith("."):
        raise InvalidAmount(raw)
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise InvalidAmount(raw) from exc
    if not value.is_finite() or value < 0 or value > MAX_AMOUNT:
        raise InvalidAmount(raw)
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidAmount(raw)
    return value
