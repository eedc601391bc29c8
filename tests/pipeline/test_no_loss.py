"""No click lost, none stored twice: the buffer, the drain, crashes on either side of the commit,
Redis down, and a postback that arrives before its click has drained."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine

from apps.common.redis import redis_client
from apps.conversions.models import Conversion
from apps.offers.models import OfferStatus
from apps.tracking import click_store
from apps.tracking.buffer import DRAIN_GROUP, PENDING_KEY_PREFIX, STREAM_KEY
from apps.tracking.enrichment import click_enrich
from apps.tracking.models import Click
from tests import factories
from tests.pipeline.conftest import GB_IP, WINDOWS_CHROME, click_url, drain, stream_state

pytestmark = pytest.mark.django_db

N = 40
FROZEN = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


def _send_clicks(browser, offer, affiliate, n: int = N) -> dict[str, str]:
    """n clicks, each with its own sub1; returns click id -> sub1 as the redirects told them."""
    sent = {}
    for i in range(n):
        response = browser.get(click_url(offer_id=offer.pk, aff_id=affiliate.pk, sub1=f"s{i}"))
        assert response.status_code == 302
        query = parse_qs(urlsplit(response["Location"]).query)
        assert query["s1"] == [f"s{i}"]
        sent[query["cid"][0]] = f"s{i}"
    assert len(sent) == n
    return sent


def _stored() -> dict[str, str]:
    rows = list(Click.objects.values_list("click_id", "sub1"))
    assert len(rows) == len({click_id for click_id, _ in rows})  # no click twice
    return dict(rows)


def _read_as(consumer: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """What a drain worker reads before it dies: entries delivered to it, never acknowledged."""
    client = redis_client()
    client.xgroup_create(STREAM_KEY, DRAIN_GROUP, id="0")
    response = client.xreadgroup(DRAIN_GROUP, consumer, {STREAM_KEY: ">"}, count=count)
    return response[0][1]


def test_clicks_reach_postgresql_only_through_the_drain_exactly_once(browser, offer, affiliate):
    sent = _send_clicks(browser, offer, affiliate)
    assert Click.objects.count() == 0
    assert stream_state() == (N, 0)

    assert drain() == N
    assert _stored() == sent
    assert stream_state() == (0, 0)  # acknowledged and deleted
    assert set(Click.objects.values_list("offer_id", "affiliate_id", "ip", "country")) == {
        (offer.pk, affiliate.pk, GB_IP, "GB")
    }
    assert set(Click.objects.values_list("device_type", "os", "browser", "is_bot")) == {
        ("desktop", "windows", "Chrome", False)
    }

    assert drain() == 0  # a second drain finds nothing and adds nothing
    assert _stored() == sent


def test_the_drain_works_in_batches(browser, offer, affiliate):
    sent = _send_clicks(browser, offer, affiliate)
    assert drain(batch_size=7, max_batches=2) == 14
    assert Click.objects.count() == 14
    assert stream_state() == (N - 14, 0)
    assert drain(batch_size=7) == N - 14
    assert _stored() == sent


def test_a_drain_that_dies_before_its_commit_loses_nothing(browser, offer, affiliate):
    sent = _send_clicks(browser, offer, affiliate)
    taken = _read_as("dead", count=N // 2)
    assert len(taken) == N // 2
    assert stream_state() == (N, N // 2)

    # A live drain leaves a consumer's fresh entries alone (they may still be in flight)...
    assert drain(consumer="alive") == N - N // 2
    assert Click.objects.count() == N - N // 2
    assert stream_state() == (N // 2, N // 2)
    # ...and claims them once they have been idle long enough.
    assert drain(consumer="alive", claim_idle_ms=0) == N // 2
    assert _stored() == sent
    assert stream_state() == (0, 0)


def test_a_drain_that_dies_after_its_commit_but_before_its_ack_adds_nothing_twice(
    browser, offer, affiliate
):
    sent = _send_clicks(browser, offer, affiliate)
    taken = _read_as("dead", count=N)
    rows = []
    for _entry_id, fields in taken:
        row = json.loads(fields[b"c"])
        click_enrich(row, buffered_unique=fields[b"u"] == b"1")
        rows.append(row)
    assert click_store.clicks_insert(rows) == N  # committed; the worker dies before XACK
    assert stream_state() == (N, N)

    assert drain(consumer="alive", claim_idle_ms=0) == N  # the whole batch is replayed...
    assert _stored() == sent  # ...and ON CONFLICT DO NOTHING keeps one row per click
    assert stream_state() == (0, 0)
    assert click_store.clicks_insert(rows) == 0


def test_redis_down_writes_the_click_to_postgresql_and_still_redirects(
    browser, offer, affiliate, redis_down
):
    with time_machine.travel(FROZEN, tick=False):
        response = browser.get(click_url(offer_id=offer.pk, aff_id=affiliate.pk, sub1="x"))
    assert response.status_code == 302
    click_id = response.cookies["ocpa_cid"].value
    assert response["Location"] == f"https://shop.example.com/lp?cid={click_id}&s1=x"
    # No drain: the row is there at once, enriched on the way in.
    assert list(
        Click.objects.values_list(
            "click_id",
            "offer_id",
            "affiliate_id",
            "created_at",
            "country",
            "device_type",
            "os",
            "browser",
            "is_bot",
            "non_browser",
            "is_unique",
            "fallback_reason",
            "sub1",
        )
    ) == [
        (
            click_id,
            offer.pk,
            affiliate.pk,
            FROZEN,
            "GB",
            "desktop",
            "windows",
            "Chrome",
            False,
            False,
            True,
            "",
            "x",
        )
    ]


def test_redis_down_keeps_fallback_clicks_too(browser, offer, affiliate, redis_down):
    paused = factories.OfferFactory(
        status=OfferStatus.PAUSED, fallback_url="https://shop.example.com/fb"
    )
    response = browser.get(click_url(offer_id=paused.pk, aff_id=affiliate.pk))
    assert (response.status_code, response["Location"]) == (302, "https://shop.example.com/fb")
    assert list(Click.objects.values_list("offer_id", "fallback_reason", "is_unique")) == [
        (paused.pk, "not_runnable", False)
    ]


def test_a_postback_before_the_drain_is_attributed(client, browser, offer, affiliate):
    factories.GoalFactory(offer=offer, code="lead", is_default=True)
    with time_machine.travel(FROZEN, tick=False):
        response = browser.get(
            click_url(
                offer_id=offer.pk,
                aff_id=affiliate.pk,
                sub1="a",
                sub2="b",
                sub3="c",
                sub4="d",
                sub5="e",
                source_id="src",
                aff_click_id="their-1",
                creative_id="cr7",
            )
        )
        click_id = response.cookies["ocpa_cid"].value
        assert Click.objects.count() == 0
        assert redis_client().exists(PENDING_KEY_PREFIX + click_id) == 1

        postback = client.get(
            "/postback",
            {"click_id": click_id, "token": factories.ADVERTISER_TOKEN, "order_id": "o-1"},
        )
    assert postback.status_code == 200
    body = postback.json()
    assert (body["result"], body["status"], body["reason"]) == ("accepted", "approved", None)
    conversion = Conversion.objects.get()
    assert body["conversion_id"] == conversion.pk
    snapshot = {
        "offer_id": offer.pk,
        "affiliate_id": affiliate.pk,
        "click_id": click_id,
        "click_created_at": FROZEN,
        "click_ip": GB_IP,
        "click_country": "GB",
        "click_is_bot": False,
        "sub1": "a",
        "sub2": "b",
        "sub3": "c",
        "sub4": "d",
        "sub5": "e",
        "source_id": "src",
        "aff_click_id": "their-1",
        "creative_id": "cr7",
        "is_over_cap": False,
    }
    assert Conversion.objects.values(*snapshot).get() == snapshot

    assert drain() == 1
    click = Click.objects.get()
    assert (click.click_id, click.created_at, click.user_agent) == (
        click_id,
        FROZEN,
        WINDOWS_CHROME,
    )
    assert Conversion.objects.values(*snapshot).get() == snapshot
    # The same postback again now finds the drained click and the first conversion.
    with time_machine.travel(FROZEN, tick=False):
        again = client.get(
            "/postback",
            {"click_id": click_id, "token": factories.ADVERTISER_TOKEN, "order_id": "o-1"},
        )
    assert (again.json()["result"], again.json()["conversion_id"]) == ("duplicate", conversion.pk)
    assert Conversion.objects.count() == 1


def test_a_postback_for_a_click_nobody_made_is_refused(client):
    postback = client.get(
        "/postback", {"click_id": "0sx6eo0" + "a" * 22, "token": factories.ADVERTISER_TOKEN}
    )
    assert (postback.status_code, postback.json()["reason"]) == (404, "unknown_click")
