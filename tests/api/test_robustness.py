"""No input makes the API answer 500; every error answer is JSON with a code."""

from __future__ import annotations

import pytest

from .conftest import World

ENDPOINTS = [
    "/api/v1/affiliate/offers/",
    "/api/v1/affiliate/stats/",
    "/api/v1/affiliate/conversions/",
    "/api/v1/affiliate/balance/",
    "/api/v1/affiliate/postbacks/",
    "/api/v1/affiliate/postbacks/{pb}/",
    "/api/v1/advertiser/offers/",
    "/api/v1/advertiser/conversions/",
    "/api/v1/advertiser/stats/",
    "/api/v1/network/offers/",
    "/api/v1/network/affiliates/",
    "/api/v1/network/conversions/",
    "/api/v1/network/stats/",
]
ODD_QUERIES = [
    "page=0",
    "page=-1",
    "page=last",
    "page=99999999999999999999",
    "status=%00",
    "status=approved&status=bogus",
    "format=xml",
    "format=csv",
    "date_from=2024-01-01T00:00&date_to=x",
    "group_by=%00",
    "timezone=%00",
    "timezone=" + "A" * 5000,
    "sub1=" + "x" * 10000,
    "offer=%EF%BC%91",
    "affiliate=1e3",
]


def _clients(world: World):
    return {
        "affiliate": world.client_a,
        "advertiser": world.client_x,
        "staff": world.client_staff,
    }


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options", "head"])
def test_every_method_on_every_endpoint_is_never_500(world: World, method: str):
    for role, client in _clients(world).items():
        for template in ENDPOINTS:
            url = template.format(pb=world.postbacks["a"].pk)
            response = getattr(client, method)(url, {"junk": "x"} if method != "get" else None)
            assert response.status_code < 500, (role, method, url)
            if response.status_code >= 400 and method != "head":
                assert response.json()["code"], (role, method, url)


@pytest.mark.parametrize("query", ODD_QUERIES)
def test_odd_query_strings_are_never_500(world: World, query: str):
    for client in _clients(world).values():
        for template in ENDPOINTS:
            url = template.format(pb=world.postbacks["a"].pk) + "?" + query
            response = client.get(url)
            assert response.status_code < 500, url
            if response.status_code >= 400:
                assert response["Content-Type"] == "application/json", url
                assert response.json()["code"], url


def test_unknown_api_path_is_json_404(world: World):
    for url in ("/api/v1/nope/", "/api/v1/affiliate/postbacks/1.5/", "/api/v1/affiliate/x/y/"):
        response = world.client_a.get(url)
        assert response.status_code == 404, url
        assert response.json() == {"code": "not_found", "detail": "Not found."}


def test_missing_trailing_slash_still_redirects(world: World):
    response = world.client_a.get("/api/v1/affiliate/offers")
    assert response.status_code == 301
    assert response["Location"] == "/api/v1/affiliate/offers/"


def test_unsupported_media_type_is_415(world: World):
    response = world.client_a.generic(
        "POST", "/api/v1/affiliate/postbacks/", "<xml/>", content_type="application/xml"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_form_encoded_postback_create_works(world: World):
    response = world.client_a.post(
        "/api/v1/affiliate/postbacks/", {"url": "https://tracker.example.net/pb"}
    )
    assert response.status_code == 201


def test_big_json_body_is_400_not_500(world: World):
    response = world.client_a.post(
        "/api/v1/affiliate/postbacks/",
        {"url": "https://tracker.example.net/" + "a" * 100_000},
        format="json",
    )
    assert response.status_code in (400, 413)


@pytest.mark.parametrize(
    "body",
    [
        [],
        "string",
        5,
        None,
        {"url": ["https://a.example.net/"]},
        {"url": {"x": 1}},
        {"url": "https://tracker.example.net/", "offer_id": [1]},
        {"url": "https://tracker.example.net/", "fire_on_pending": "maybe"},
    ],
)
def test_odd_json_bodies_are_400(world: World, body):
    response = world.client_a.post("/api/v1/affiliate/postbacks/", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid", "parse_error")
