"""Affiliate postback URLs: create, list, delete; SSRF-shaped URLs are refused with one answer."""

from __future__ import annotations

import pytest

from apps.common.safe_http import URL_REFUSED
from apps.partners.models import AffiliatePostback

from .conftest import World

URL = "/api/v1/affiliate/postbacks/"
REFUSAL = {
    "code": "invalid",
    "detail": "Invalid input.",
    "errors": {"url": [URL_REFUSED]},
}


def test_create_with_public_url(world: World):
    response = world.client_a.post(
        URL, {"url": "https://tracker.example.net/pb?c={click_id}"}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    created = AffiliatePostback.objects.get(pk=body["id"])
    assert created.affiliate_id == world.aff_a.pk
    assert created.url == "https://tracker.example.net/pb?c={click_id}"
    assert (created.offer_id, created.goal_id, created.is_active) == (None, None, True)
    assert body == {
        "id": created.pk,
        "url": "https://tracker.example.net/pb?c={click_id}",
        "offer_id": None,
        "goal_id": None,
        "fire_on_pending": False,
        "fire_on_reversal": False,
        "http_method": "GET",
        "sign": False,
        "paused_at": None,
        "pause_reason": "",
        "resumed_at": None,
        "is_active": True,
        "created_at": body["created_at"],
    }


def test_create_scoped_to_runnable_offer_and_its_goal(world: World):
    offer, goal = world.offers["x_approved"], world.goals["x_approved"]
    response = world.client_a.post(
        URL,
        {
            "url": "https://tracker.example.net/pb?c={click_id}&p={payout}",
            "offer_id": offer.pk,
            "goal_id": goal.pk,
            "fire_on_pending": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = AffiliatePostback.objects.get(pk=response.json()["id"])
    assert (created.affiliate_id, created.offer_id, created.goal_id) == (
        world.aff_a.pk,
        offer.pk,
        goal.pk,
    )
    assert created.fire_on_pending is True


def test_affiliate_field_in_body_is_ignored(world: World):
    response = world.client_a.post(
        URL,
        {
            "url": "https://tracker.example.net/pb",
            "affiliate": world.aff_b.pk,
            "affiliate_id": world.aff_b.pk,
        },
        format="json",
    )
    assert response.status_code == 201
    assert AffiliatePostback.objects.get(pk=response.json()["id"]).affiliate_id == world.aff_a.pk


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8000/pb?c={click_id}",
        "http://localhost/pb",
        "http://app.internal/pb",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.5/",
        "http://100.64.0.1/",
        "http://[::1]/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://127.1/",
        "ftp://tracker.example.net/pb",
        "file:///etc/passwd",
        "gopher://tracker.example.net/",
        "javascript:alert(1)",
        "http://u:p@example.com/",
        "https://user@tracker.example.net/pb",
        "tracker.example.net/pb",
        "http:///nohost",
        "http://[::1/",
        "http://exa mple.com/pb",
        "http://tracker.example.net:25/pb",  # SMTP: a port browsers refuse
        "https://tracker.example.net:6667/pb",  # IRC
        "http://93.184.215.14:22/pb",
        "",
    ],
)
def test_refused_urls_get_one_answer(world: World, url: str):
    response = world.client_a.post(URL, {"url": url}, format="json")
    assert response.status_code == 400
    body = response.json()
    if url == "":
        assert body["code"] == "invalid"
        assert list(body["errors"]) == ["url"]
    else:
        assert body == REFUSAL
    assert (
        not AffiliatePostback.objects.filter(affiliate=world.aff_a)
        .exclude(pk=world.postbacks["a"].pk)
        .exists()
    )


def test_url_too_long_is_400(world: World):
    response = world.client_a.post(
        URL, {"url": "https://tracker.example.net/" + "a" * 2000}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_url_with_nul_is_400(world: World):
    response = world.client_a.post(URL, {"url": "https://tracker.example.net/\x00"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize(
    "offer_key",
    ["y_private_b", "x_private", "x_pending", "x_unapplied", "x_public_rejected", "x_paused"],
)
def test_offer_not_runnable_is_400(world: World, offer_key: str):
    response = world.client_a.post(
        URL,
        {"url": "https://tracker.example.net/pb", "offer_id": world.offers[offer_key].pk},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"] == {"offer_id": ["Unknown offer."]}
    assert AffiliatePostback.objects.filter(affiliate=world.aff_a).count() == 1


@pytest.mark.parametrize("offer_id", [0, -1, 10**30, "abc"])
def test_offer_id_odd_values_are_400(world: World, offer_id):
    response = world.client_a.post(
        URL, {"url": "https://tracker.example.net/pb", "offer_id": offer_id}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_goal_of_a_different_offer_is_400(world: World):
    response = world.client_a.post(
        URL,
        {
            "url": "https://tracker.example.net/pb",
            "offer_id": world.offers["x_approved"].pk,
            "goal_id": world.goals["x_public"].pk,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"goal_id": ["Unknown goal."]}


def test_goal_without_offer_is_400(world: World):
    response = world.client_a.post(
        URL,
        {"url": "https://tracker.example.net/pb", "goal_id": world.goals["x_approved"].pk},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"goal_id": ["Unknown goal."]}


@pytest.mark.parametrize("goal_id", [10**30, -5])
def test_goal_id_out_of_range_is_400(world: World, goal_id: int):
    response = world.client_a.post(
        URL,
        {
            "url": "https://tracker.example.net/pb",
            "offer_id": world.offers["x_approved"].pk,
            "goal_id": goal_id,
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_malformed_json_is_400_with_code(world: World):
    response = world.client_a.generic("POST", URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_delete_own_is_204(world: World):
    pk = world.postbacks["a"].pk
    response = world.client_a.delete(f"{URL}{pk}/")
    assert response.status_code == 204
    assert not AffiliatePostback.objects.filter(pk=pk).exists()
    assert AffiliatePostback.objects.filter(pk=world.postbacks["b"].pk).exists()


def test_advertiser_and_staff_cannot_create(world: World):
    for client in (world.client_x, world.client_staff):
        response = client.post(URL, {"url": "https://tracker.example.net/pb"}, format="json")
        assert response.status_code == 403
    assert AffiliatePostback.objects.count() == 2
