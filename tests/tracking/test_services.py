"""apps.tracking.services called directly: parsing, click ids, uniqueness, the outcome."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from unittest.mock import ANY

import pytest
from django.http import QueryDict

from apps.common.redis import redis_client
from apps.tracking import click_store, services
from apps.tracking.click_ids import click_id_new, click_id_time
from apps.tracking.enrichment import country_for_ip, user_agent_is_bot
from apps.tracking.models import Click
from apps.tracking.services import FallbackReason, click_handle, click_params_parse
from tests import factories
from tests.tracking.conftest import BROWSER_UA, OFFER_FALLBACK, PUBLIC_IP, drain

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
URL_SAFE = re.compile(r"^[0-9a-z]{7}[A-Za-z0-9_-]{22}$")


def _handle(query: str, **overrides: object) -> services.ClickOutcome:
    kwargs: dict[str, object] = {
        "query": QueryDict(query),
        "ip": PUBLIC_IP,
        "user_agent": BROWSER_UA,
        "referrer": "",
        "visitor_id": "",
        "now": NOW,
    }
    kwargs.update(overrides)
    return click_handle(**kwargs)  # type: ignore[arg-type]


# --- click ids -----------------------------------------------------------------------------------


def test_click_ids_are_url_safe_long_and_unique():
    ids = {click_id_new(NOW) for _ in range(20_000)}
    assert len(ids) == 20_000
    assert all(URL_SAFE.match(cid) for cid in ids)
    assert all(len(cid) <= Click._meta.get_field("click_id").max_length for cid in ids)
    assert {cid[:7] for cid in ids} == {"0sx6eo0"}  # 1748779200, NOW's second, in base 36
    assert {click_id_time(cid) for cid in ids} == {NOW}


@pytest.mark.parametrize(
    ("click_id", "created"),
    [
        ("0sx6eo0" + "A" * 22, NOW),
        ("0000000" + "-" * 22, datetime(1970, 1, 1, tzinfo=UTC)),
        ("0SX6EO0" + "A" * 22, None),  # upper case is not base 36 here
        ("0sx6eo0" + "A" * 21, None),  # one short
        ("clk0000000000000000001", None),  # ids made before the time prefix
        ("", None),
    ],
)
def test_click_id_time(click_id, created):
    assert click_id_time(click_id) == created


# --- parameters ----------------------------------------------------------------------------------


def test_params_parse_returns_every_canonical_name():
    assert click_params_parse(QueryDict("")) == dict.fromkeys(services.PARAM_ALIASES, "")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("offer_id=1&aff_id=2", {"offer_id": "1", "aff_id": "2"}),
        ("oid=1&affid=2", {"offer_id": "1", "aff_id": "2"}),
        ("o=1&a=2", {"offer_id": "1", "aff_id": "2"}),
        ("offer_id=1&pid=2", {"offer_id": "1", "aff_id": "2"}),
        ("aff_sub=x&aff_sub2=y&aff_sub5=z", {"sub1": "x", "sub2": "y", "sub5": "z"}),
        ("aff_sub1=x", {"sub1": "x"}),
        ("sub_id1=a&sub_id3=c&sub_id4=d", {"sub1": "a", "sub3": "c", "sub4": "d"}),
        ("source=s", {"source_id": "s"}),
        ("source_id=s1&source=s2", {"source_id": "s1"}),
        ("sub1=a&aff_sub=b&sub_id1=c", {"sub1": "a"}),
        ("aff_sub=b&sub_id1=c", {"sub1": "b"}),
        ("sub1=&aff_sub=b", {"sub1": "b"}),
        ("sub1=first&sub1=last", {"sub1": "last"}),
        (
            "aff_click_id=abc&creative_id=c1&url_id=u1",
            {"aff_click_id": "abc", "creative_id": "c1", "url_id": "u1"},
        ),
    ],
)
def test_params_parse_aliases(query, expected):
    assert click_params_parse(QueryDict(query)) == {
        **dict.fromkeys(services.PARAM_ALIASES, ""),
        **expected,
    }


def test_params_parse_cleans_and_truncates():
    parsed = click_params_parse({"sub1": "a\x00b" + "c" * 400, "source": "\x07s\x9f"})
    assert parsed["sub1"] == ("ab" + "c" * 400)[:255]
    assert parsed["source_id"] == "s"


# --- outcomes ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_handle_records_the_click_and_fills_the_destination(runnable_offer, affiliate):
    outcome = _handle(
        f"offer_id={runnable_offer.pk}&aff_id={affiliate.pk}&sub1=s%201",
        referrer="https://ref.example/",
        visitor_id="visitor-1",
    )
    assert drain() == 1
    click = Click.objects.get()
    assert outcome == services.ClickOutcome(
        redirect_url=f"https://shop.example.com/lp?cid={click.click_id}&s1=s%201",
        click_id=click.click_id,
        offer_id=click.offer_id,
        cookie_max_age=30 * 86400,
        fallback_reason=None,
    )
    assert (click.created_at, click.ip, click.country, click.referrer, click.sub1) == (
        NOW,
        PUBLIC_IP,
        "GB",
        "https://ref.example/",
        "s 1",
    )


@pytest.mark.django_db
def test_handle_without_ip(runnable_offer, affiliate):
    runnable_offer.destination_url = "https://shop.example.com/?ip={ip}&geo={country}"
    runnable_offer.save()
    outcome = _handle(f"offer_id={runnable_offer.pk}&aff_id={affiliate.pk}", ip=None)
    assert outcome.redirect_url == "https://shop.example.com/?ip=&geo="
    drain()
    assert Click.objects.values_list("ip", "country").get() == (None, "")


@pytest.mark.django_db
def test_cookie_lifetime_follows_the_attribution_window(runnable_offer, affiliate):
    runnable_offer.attribution_window_days = 7
    runnable_offer.save()
    outcome = _handle(f"offer_id={runnable_offer.pk}&aff_id={affiliate.pk}")
    assert outcome.cookie_max_age == 7 * 86400


@pytest.mark.django_db
@pytest.mark.parametrize(
    "destination",
    [
        "javascript:alert(1)//{click_id}",
        "//evil.example/{click_id}",
        "/relative/{click_id}",
        "ftp://files.example/{click_id}",
        "{sub1}",
        "",
    ],
)
def test_unusable_destination_goes_to_fallback_with_an_unbilled_click(
    runnable_offer, affiliate, destination
):
    runnable_offer.destination_url = destination
    runnable_offer.save()
    outcome = _handle(f"offer_id={runnable_offer.pk}&aff_id={affiliate.pk}&sub1=https://x.example")
    assert outcome == services.ClickOutcome(
        OFFER_FALLBACK, fallback_reason=FallbackReason.BAD_DESTINATION
    )
    assert drain() == 1
    assert list(
        Click.objects.values_list(
            "offer_id", "affiliate_id", "fallback_reason", "is_unique", "sub1", "created_at"
        )
    ) == [(runnable_offer.pk, affiliate.pk, "bad_destination", False, "https://x.example", NOW)]


@pytest.mark.django_db
def test_redirect_right_at_the_length_limit_is_kept(
    runnable_offer, affiliate, django_capture_on_commit_callbacks
):
    sub = "~" * 255  # the longest sub; "~" is not encoded, so it stays one character
    head = "https://shop.example.com/lp?s=" + "{sub1}" * 30 + "&pad="
    pad = services.REDIRECT_MAX_LENGTH - (len(head) - 30 * len("{sub1}") + 30 * 255)
    query = f"offer_id={runnable_offer.pk}&aff_id={affiliate.pk}&sub1={sub}"

    with django_capture_on_commit_callbacks(execute=True):  # the catalog hears of each change
        runnable_offer.destination_url = head + "p" * pad
        runnable_offer.save()
    outcome = _handle(query)
    assert outcome.click_id is not None
    assert len(outcome.redirect_url) == services.REDIRECT_MAX_LENGTH

    with django_capture_on_commit_callbacks(execute=True):
        runnable_offer.destination_url = head + "p" * (pad + 1)
        runnable_offer.save()
    assert _handle(query) == services.ClickOutcome(OFFER_FALLBACK, fallback_reason="bad_request")
    assert drain() == 2
    assert list(
        Click.objects.order_by("id").values_list("click_id", "fallback_reason", "is_unique")
    ) == [(outcome.click_id, "", True), (ANY, "bad_request", False)]


@pytest.mark.django_db
def test_fallback_without_any_offer_uses_the_network_url(settings):
    settings.NETWORK_FALLBACK_URL = "https://network.example.org/none"
    assert _handle("") == services.ClickOutcome(
        "https://network.example.org/none", fallback_reason="missing_ids"
    )


# --- unique clicks -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_unique_by_ip_and_ua_then_by_the_new_visitor_cookie(runnable_offer, affiliate):
    query = f"offer_id={runnable_offer.pk}&aff_id={affiliate.pk}"
    _handle(query, visitor_id_new="vid-A")  # a new browser: known by IP+UA and given vid-A
    _handle(query, visitor_id="vid-A", ip="93.184.215.14")  # same browser, new network
    _handle(query, visitor_id_new="vid-B")  # cookies blocked, same IP+UA
    _handle(query, visitor_id="vid-C")  # a browser we have not seen on this offer
    _handle(query, visitor_id_new="vid-D", user_agent="Mozilla/5.0 Other")  # another device
    assert drain() == 5
    assert list(Click.objects.order_by("id").values_list("is_unique", flat=True)) == [
        True,
        False,
        False,
        True,
        True,
    ]


@pytest.mark.django_db
def test_unique_window_expires(runnable_offer, affiliate, settings):
    settings.UNIQUE_CLICK_WINDOW_SECONDS = 60
    _handle(f"offer_id={runnable_offer.pk}&aff_id={affiliate.pk}", visitor_id="vid-A")
    keys = redis_client().keys(f"uclick:{runnable_offer.pk}:{affiliate.pk}:*")
    assert len(keys) == 1
    assert 0 < redis_client().ttl(keys[0]) <= 60


@pytest.mark.django_db
def test_unique_check_without_redis_counts_the_click(runnable_offer, affiliate, redis_down):
    query = f"offer_id={runnable_offer.pk}&aff_id={affiliate.pk}"
    first = _handle(query, visitor_id="vid-A")
    second = _handle(query, visitor_id="vid-A")
    assert first.click_id and second.click_id
    # In PostgreSQL at once: there is no buffer to drain.
    assert list(Click.objects.order_by("id").values_list("click_id", "is_unique")) == [
        (first.click_id, True),
        (second.click_id, True),
    ]


# --- click store ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_click_store_round_trip(runnable_offer, affiliate):
    click = factories.ClickFactory(offer=runnable_offer, affiliate=affiliate)
    found = click_store.click_get(click_id=click.click_id)
    assert found == click
    assert found.offer.advertiser_id == runnable_offer.advertiser_id
    assert click_store.click_get(click_id="nope") is None
    assert click_store.click_get(click_id="") is None


@pytest.mark.django_db
def test_click_store_reads_more_with_the_click(runnable_offer, affiliate):
    click = factories.ClickFactory(offer=runnable_offer, affiliate=affiliate)
    also = ", upper(tracking_click.click_id), %s::int + 1"  # parameters before the click's
    found, extra = click_store.click_get_with(click_id=click.click_id, also=also, also_params=[41])
    assert (found, extra) == (click, (click.click_id.upper(), 42))
    assert found.offer.advertiser_id == runnable_offer.advertiser_id
    assert click_store.click_get_with(click_id="nope", also=also, also_params=[1]) == (None, None)


# --- enrichment ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "country"),
    [
        (PUBLIC_IP, "GB"),
        ("93.184.215.14", "US"),
        ("10.0.0.1", ""),
        ("127.0.0.1", ""),
        ("::1", ""),
        ("", ""),
        (None, ""),
        ("not-an-ip", ""),
        ("999.1.1.1", ""),
    ],
)
def test_country_for_ip(ip, country):
    assert country_for_ip(ip) == country


@pytest.mark.parametrize(
    ("user_agent", "is_bot"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
        ("python-requests/2.32.3", True),
        ("", True),
        (" \t ", True),
        (BROWSER_UA, False),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            False,
        ),
    ],
)
def test_user_agent_is_bot(user_agent, is_bot):
    assert user_agent_is_bot(user_agent) is is_bot
