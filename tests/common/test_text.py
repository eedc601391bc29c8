from __future__ import annotations

import pytest

from apps.common.text import text_clean


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
    ],
)
def test_text_clean(value, max_length, cleaned):
    assert text_clean(value, max_length) == cleaned


def test_controls_do_not_count_towards_the_length():
    assert text_clean("\x00a\x00b\x00c", 3) == "abc"


def test_huge_input_is_cut_before_cleaning():
    assert text_clean("x" * 1_000_000, 255) == "x" * 255
