"""Hostile query strings through the buffered path and the Redis-down path alike: the redirect
holds, nothing is injected into the destination, what is stored is truncated and clean."""

from __future__ import annotations

import pytest

from apps.tracking.models import Click
from tests.pipeline.conftest import NETWORK_FALLBACK, WINDOWS_CHROME, click_url, drain

pytestmark = pytest.mark.django_db

FULL = "https://shop.example.com/lp?cid={click_id}&s1={sub1}&s2={sub2}&ip={ip}&src={source_id}"


@pytest.fixture(params=["buffered", "redis down"])
def path(request):
    """Run the test through the Redis buffer and the drain, and again with Redis down."""
    if request.param == "redis down":
        request.getfixturevalue("redis_down")
    return request.param


def _stored(path: str) -> Click:
    if path == "buffered":
        assert Click.objects.count() == 0
        assert drain() == 1
    return Click.objects.get()


def test_macro_looking_values_stay_text(browser, offer, affiliate, path):
    offer.destination_url = FULL
    offer.save()
    response = browser.get(
        click_url(
            offer_id=offer.pk,
            aff_id=affiliate.pk,
            sub1="{click_id}",
            sub2="{ip}&x=1",
            source_id="{sub1}",
        )
    )
    click = _stored(path)
    assert response["Location"] == (
        f"https://shop.example.com/lp?cid={click.click_id}&s1=%7Bclick_id%7D&s2=%7Bip%7D%26x%3D1"
        "&ip=81.2.69.160&src=%7Bsub1%7D"
    )
    assert (click.sub1, click.sub2, click.source_id) == ("{click_id}", "{ip}&x=1", "{sub1}")


def test_nul_and_control_bytes_are_stored_cleaned(browser, offer, affiliate, path):
    response = browser.get(
        f"/click?offer_id={offer.pk}&aff_id={affiliate.pk}"
        "&sub1=a%00b%01c&sub2=%00&aff_click_id=x%00y&creative_id=c%1b1&url_id=%7fu",
        HTTP_USER_AGENT=WINDOWS_CHROME[:11] + "\x00" + WINDOWS_CHROME[11:],
        HTTP_REFERER="https://ref.example/\x00r",
    )
    click = _stored(path)
    assert response["Location"] == f"https://shop.example.com/lp?cid={click.click_id}&s1=abc"
    assert (
        click.sub1,
        click.sub2,
        click.aff_click_id,
        click.creative_id,
        click.url_id,
        click.user_agent,
        click.referrer,
        click.device_type,
    ) == ("abc", "", "xy", "c1", "u", WINDOWS_CHROME, "https://ref.example/r", "desktop")


def test_huge_and_invalid_utf8_values_are_stored_truncated(browser, offer, affiliate, path):
    response = browser.get(
        f"/click?offer_id={offer.pk}&aff_id={affiliate.pk}&sub1={'%ff' * 300}"
        f"&sub2={'y' * 5000}&creative_id={'c' * 500}&url_id={'u' * 500}",
        HTTP_USER_AGENT="Mozilla/5.0 " + "u" * 5000,
        HTTP_REFERER="https://ref.example/" + "r" * 5000,
    )
    assert response.status_code == 302
    click = _stored(path)
    assert (click.sub1, click.sub2, click.creative_id, click.url_id) == (
        "\ufffd" * 255,
        "y" * 255,
        "c" * 64,
        "u" * 64,
    )
    assert (len(click.user_agent), len(click.referrer)) == (512, 1024)


def test_thousands_of_parameters_go_to_the_network_fallback(browser, offer, affiliate, path):
    junk = "&".join(f"p{i}={i}" for i in range(5000))
    response = browser.get(f"/click?offer_id={offer.pk}&aff_id={affiliate.pk}&{junk}")
    assert (response.status_code, response["Location"]) == (302, NETWORK_FALLBACK)
    assert response["X-Fallback-Reason"] == "bad_request"
    if path == "buffered":
        assert drain() == 0
    assert Click.objects.count() == 0
