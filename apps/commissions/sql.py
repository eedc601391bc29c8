"""SQL fragments shared by the accrual statements and the reconciliation checks, built from our
own constants only (currency codes, column names), never from input."""

from __future__ import annotations

from apps.common.money import Currency, minor_units


def minor_units_sql(column: str) -> str:
    """SQL for the number of decimals of the currency in `column` (one of our own columns)."""
    cases = " ".join(
        f"WHEN '{code}' THEN {minor_units(code)}"
        for code in Currency.values
        if minor_units(code) != 2
    )
    return f"(CASE {column} {cases} ELSE 2 END)"


# What a tier `t` pays on conversion `c`: like apps.offers.pricing.PriceRule.apply, rounded
# half-up to the currency's minor unit (PostgreSQL's round() on numeric rounds half away from
# zero: the same on amounts that are never negative). Percent of no sale amount: NULL, no tier.
TIER_AMOUNT_SQL = """(CASE t.payout_type
    WHEN 'fixed' THEN round(t.payout, {scale})
    WHEN 'percent' THEN round(c.sale_amount * t.payout / 100, {scale})
    WHEN 'both' THEN round(t.payout + COALESCE(c.sale_amount, 0) * t.payout_percent / 100, {scale})
END)""".replace("{scale}", minor_units_sql("c.currency"))
