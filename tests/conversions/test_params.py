"""Postback parameter dialects and the log's copy of them (apps.conversions.params)."""

from __future__ import annotations

import pytest

from apps.conversions.params import (
    POSTBACK_ALIASES,
    STATUS_ALIASES,
    params_for_log,
    postback_params_parse,
)

EMPTY = {**dict.fromkeys(POSTBACK_ALIASES, ""), "goal_by_id": ""}


def test_canonical_names_and_nothing_else():
    assert postback_params_parse({"click_id": " abc ", "foo": "bar"}) == {
        **EMPTY,
        "click_id": "abc",
    }


@pytest.mark.parametrize(
    "raw",
    [
        {"transaction_id": "t", "adv_sub": "o", "goal_id": "g", "security_token": "s"},
        {"clickid": "t", "adv_sub": "o", "event_id": "g", "verification_token": "s"},
        {"cid": "t", "order_id": "o", "adv_event_id": "g", "secure": "s"},
    ],
    ids=["hasoffers", "everflow", "affise-scaleo"],
)
def test_aliases_map_to_canonical_names(raw):
    parsed = postback_params_parse(raw)
    assert (parsed["click_id"], parsed["order_id"], parsed["goal"], parsed["token"]) == (
        "t",
        "o",
        "g",
        "s",
    )


@pytest.mark.parametrize(
    ("raw", "by_id"),
    [
        ({"goal": "12"}, ""),
        ({"goal_alias": "12"}, ""),
        ({"goal_id": "12"}, "1"),
        ({"event_id": "12"}, "1"),
        ({"adv_event_id": "12"}, "1"),
        ({"goal": "sale", "goal_id": "12"}, ""),  # the code's name comes first and wins
        ({"goal": " ", "goal_id": "12"}, "1"),
    ],
)
def test_which_goal_names_may_carry_an_id(raw, by_id):
    assert postback_params_parse(raw)["goal_by_id"] == by_id


def test_first_non_blank_alias_wins():
    parsed = postback_params_parse(
        {"amount": "  ", "sale_amount": "", "sum": "12.5", "status": "", "conv_status": "declined"}
    )
    assert (parsed["amount"], parsed["status"]) == ("12.5", "declined")


def test_adv_values_are_cleaned_and_cut():
    parsed = postback_params_parse({"adv1": "a\x00b\x1fc", "adv_sub5": "y" * 300})
    assert (parsed["adv1"], parsed["adv5"]) == ("abc", "y" * 255)


def test_ids_are_kept_whole_for_the_service_to_judge():
    parsed = postback_params_parse({"order_id": "o" * 300, "click_id": "c\x00"})
    assert (parsed["order_id"], parsed["click_id"]) == ("o" * 300, "c\x00")


def test_status_aliases():
    assert {key: value.value for key, value in STATUS_ALIASES.items()} == {
        "approved": "approved",
        "approve": "approved",
        "confirmed": "approved",
        "1": "approved",
        "pending": "pending",
        "hold": "pending",
        "2": "pending",
        "5": "pending",
        "rejected": "rejected",
        "declined": "rejected",
        "3": "rejected",
    }


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "security_token",
        "verification_token",
        "secure",
        "TOKEN",
        "Token",
        "api_secret",
        "Password",
        "postback_token",
        "tok\x00en",
    ],
)
def test_secrets_are_masked_in_the_log(name):
    logged = params_for_log({name: "adv-token-123", "click_id": "c1"})
    assert logged == {name.replace("\x00", ""): "***", "click_id": "c1"}


def test_log_values_and_names_are_cleaned_and_bounded():
    logged = params_for_log({"n\x00ame" + "k" * 100: "v\x00" + "w" * 300})
    assert logged == {("name" + "k" * 100)[:64]: ("v" + "w" * 300)[:256]}


def test_log_keeps_the_first_fifty_parameters():
    logged = params_for_log({f"p{i}": str(i) for i in range(53)})
    assert list(logged) == [f"p{i}" for i in range(50)] + ["…"]
    assert logged["…"] == "3 more parameters"
