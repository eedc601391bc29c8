from __future__ import annotations

from decimal import Decimal

import pytest

from apps.tracking.macros import macro_render


def test_known_macros_are_filled():
    assert (
        macro_render(
            "https://a.example/?c={click_id}&o={offer_id}&s={sub1}",
            {"click_id": "abc", "offer_id": 7, "sub1": "x"},
        )
        == "https://a.example/?c=abc&o=7&s=x"
    )


def test_unknown_macro_is_left_as_is():
    assert (
        macro_render("https://a.example/?c={click_id}&n={nope}", {"click_id": "abc"})
        == "https://a.example/?c=abc&n={nope}"
    )


@pytest.mark.parametrize(
    "template",
    [
        "https://a.example/?x={CLICK_ID}",  # macros are lower case
        "https://a.example/?x={ click_id }",
        "https://a.example/?x={click-id}",
        "https://a.example/?x={{click_id}",
        "https://a.example/?x={" + "a" * 33 + "}",  # longer than any macro name
        "https://a.example/?x={}",
        "https://a.example/?x=click_id}",
    ],
)
def test_things_that_are_not_macros_are_left_alone(template):
    values = {"click_id": "abc", "a" * 33: "no"}
    expected = template.replace("{{click_id}", "{abc")
    assert macro_render(template, values) == expected


def test_transaction_id_is_an_alias_of_click_id():
    assert macro_render("?t={transaction_id}&c={click_id}", {"click_id": "abc"}) == "?t=abc&c=abc"


def test_transaction_id_alias_without_a_click_id_is_left_as_is():
    assert macro_render("?t={transaction_id}", {"offer_id": 1}) == "?t={transaction_id}"


def test_none_and_empty_become_empty():
    assert macro_render("?a={sub1}&b={sub2}&c={sub3}", {"sub1": None, "sub2": "", "sub3": 0}) == (
        "?a=&b=&c=0"
    )


def test_values_are_stringified():
    assert macro_render("?p={payout}&n={n}", {"payout": Decimal("2.50"), "n": 12}) == "?p=2.50&n=12"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a b", "a%20b"),
        ("a+b", "a%2Bb"),
        ("a&b=c", "a%26b%3Dc"),
        ("#frag", "%23frag"),
        ("../?x", "..%2F%3Fx"),
        ("https://evil.example/", "https%3A%2F%2Fevil.example%2F"),
        ("@evil.example", "%40evil.example"),
        ("100%", "100%25"),
        ("%41", "%2541"),
        ("ü€😀", "%C3%BC%E2%82%AC%F0%9F%98%80"),
        ("{click_id}", "%7Bclick_id%7D"),
        ("\r\nSet-Cookie: x=1", "%0D%0ASet-Cookie%3A%20x%3D1"),
        ("-_.~", "-_.~"),
    ],
)
def test_every_value_is_url_encoded_whole(value, encoded):
    assert macro_render("https://a.example/?s={sub1}", {"sub1": value}) == (
        f"https://a.example/?s={encoded}"
    )


def test_a_value_is_never_expanded_again():
    rendered = macro_render(
        "?a={sub1}&b={sub2}", {"sub1": "{sub2}", "sub2": "{click_id}", "click_id": "abc"}
    )
    assert rendered == "?a=%7Bsub2%7D&b=%7Bclick_id%7D"


def test_repeated_macros_are_all_filled():
    assert macro_render("{sub1}/{sub1}/{sub1}", {"sub1": "x y"}) == "x%20y/x%20y/x%20y"


def test_template_without_macros_is_unchanged():
    template = "https://a.example/p?q=1&r=%7B#x"
    assert macro_render(template, {"click_id": "abc"}) == template
