from __future__ import annotations

import pytest

from apps.common.text import digits_int, text_clean


@pytest.mark.parametrize(
    ("value", "max_length", "cleaned"),
    [
        (None, 10, ""),
        ("", 10, ""),
        ("plain", 10, "plain"),
        ("exactly10!", 10, "exactly10!"),
        ("eleven chars", 10, "eleven cha"),
        ("a\x00b", 10, "ab"),
        ("\x00" * 5, 10, ""),
        ("a\x01\x08\x0b\x0c\x0e\x1f\x7fb", 10, "ab"),
        ("a\x80\x85\x9fb", 10, "ab"),  # C1 controls
        ("tab\tnl\ncr\r", 20, "tab\tnl\ncr\r"),  # kept: legitimate in free text
        ("ü€😀", 10, "ü€😀"),
        ("😀" * 20, 5, "😀" * 5),  # characters, not bytes
        ("\ufffd\ufffd", 10, "\ufffd\ufffd"),
        ("a\ud800b\udfffc", 10, "abc"),  # lone surrogates: no UTF-8 for them
    ],
)
def test_text_clean(value, max_length, cleaned):
    assert text_clean(value, max_length) == cleaned


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("0", 0),
        ("42", 42),
        ("007", 7),
        ("9" * 18, int("9" * 18)),
        ("9" * 19, None),
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("\u00b2", None),  # str.isdigit() says yes, int() says no
        ("\u0661", None),  # Arabic-Indic one: int() would take it
    ],
)
def test_digits_int(value, number):
    assert digits_int(value) == number


def test_controls_do_not_count_towards_the_length():
    assert text_clean("\x00a\x00b\x00c", 3) == "abc"


def test_huge_input_is_cut_before_cleaning():
    assert text_clean("x" * 1_000_000, 255) == "x" * 255
