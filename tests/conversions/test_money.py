"""The one rounding rule and the one amount parser (apps.common.money)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.common.money import MAX_AMOUNT, InvalidAmount, amount_parse, minor_units, money_round


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", "0"),
        ("100.50", "100.50"),
        ("  7 ", "7"),
        ("0.0001", "0.0001"),
        ("00012.5", "12.5"),
        ("1000000000", "1000000000"),
        ("999999999.9999", "999999999.9999"),
    ],
)
def test_amount_parse_accepts_plain_decimals(raw, expected):
    value = amount_parse(raw)
    assert type(value) is Decimal
    assert str(value) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "-1",
        "+1",
        "NaN",
        "sNaN",
        "Infinity",
        "inf",
        "1e5",
        "1E-2",
        "1,000.00",
        "1.000,50",
        "1 000",
        ".5",
        "5.",
        ".",
        "1.2.3",
        "10.12345",
        "1.00000",
        "1000000000.01",
        "1000000000000",
        "1" * 33,
        "0x1A",
        "١٢٣",  # Arabic-Indic digits: Decimal would read 123
        "\uff11\uff10\uff10",  # full-width digits
        "²",
        "1\x002",
    ],
)
def test_amount_parse_refuses_everything_else(raw):
    with pytest.raises(InvalidAmount):
        amount_parse(raw)


def test_max_amount_is_a_billion():
    assert Decimal("1000000000") == MAX_AMOUNT


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("0.125", "USD", "0.13"),
        ("0.124", "USD", "0.12"),
        ("0.135", "EUR", "0.14"),
        ("10.05", "USD", "10.05"),
        ("10", "USD", "10.00"),
        ("2.5", "JPY", "3"),
        ("1005.5", "JPY", "1006"),
        ("1004.49", "JPY", "1004"),
        ("1.5", "KRW", "2"),
        ("-0.125", "USD", "-0.13"),  # half-up is away from zero, for reversals too
        ("0.005", "GBP", "0.01"),
    ],
)
def test_money_round_half_up_to_the_minor_unit(amount, currency, expected):
    rounded = money_round(Decimal(amount), currency)
    assert type(rounded) is Decimal
    assert str(rounded) == expected


@pytest.mark.parametrize(
    ("currency", "units"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("XXX", 2)]
)
def test_minor_units(currency, units):
    assert minor_units(currency) == units
