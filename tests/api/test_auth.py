"""Who may call the API at all, and which audience each key belongs to."""

from __future__ import annotations

import hashlib

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create, api_key_revoke
from tests import factories

AFFILIATE_URLS = [
    "/api/v1/affiliate/offers/",
    "/api/v1/affiliate/stats/",
    "/api/v1/affiliate/conversions/",
    "/api/v1/affiliate/balance/",
    "/api/v1/affiliate/postbacks/",
]
ADVERTISER_URLS = [
    "/api/v1/advertiser/offers/",
    "/api/v1/advertiser/conversions/",
    "/api/v1/advertiser/stats/",
]
NETWORK_URLS = [
    "/api/v1/network/offers/",
    "/api/v1/network/affiliates/",
    "/api/v1/network/conversions/",
    "/api/v1/network/stats/",
]
ALL_URLS = AFFILIATE_URLS + ADVERTISER_URLS + NETWORK_URLS


def _with_header(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("url", ALL_URLS)
def test_no_header_is_401_with_json_code(url):
    response = APIClient().get(url)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        "Token abc",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        "Bearerabc",
    ],
)
def test_wrong_scheme_is_401(header):
    response = _with_header(header).get("/api/v1/affiliate/offers/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.django_db
def test_unknown_key_is_401():
    response = _with_header("Bearer ocpa_not-a-real-key").get("/api/v1/affiliate/offers/")
    assert response.status_code == 401
    assert response.json() == {
        "code": "authentication_failed",
        "detail": "Invalid or revoked API key.",
    }


@pytest.mark.django_db
def test_overlong_key_is_401_not_500():
    response = _with_header("Bearer " + "k" * 5000).get("/api/v1/affiliate/offers/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.django_db
def test_non_latin1_header_is_401_not_500():
    client = APIClient()
    response = client.get(
        "/api/v1/affiliate/offers/", HTTP_AUTHORIZATION="Bearer ключ".encode().decode("latin-1")
    )
    assert response.status_code == 401


def test_valid_key_works_and_revoked_key_does_not(affiliate):
    user = factories.UserFactory(affiliate=affiliate)
    api_key, plain = api_key_create(user=user, name="ci")
    client = _with_header(f"Bearer {plain}")
    assert client.get("/api/v1/affiliate/offers/").status_code == 200

    api_key_revoke(api_key=api_key)

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    response = client.get("/api/v1/affiliate/offers/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_revoking_one_key_leaves_the_others(affiliate):
    user = factories.UserFactory(affiliate=affiliate)
    first, first_plain = api_key_create(user=user, name="one")
    _second, second_plain = api_key_create(user=user, name="two")
    api_key_revoke(api_key=first)
    assert _with_header(f"Bearer {first_plain}").get("/api/v1/affiliate/offers/").status_code == 401
    ok = _with_header(f"Bearer {second_plain}").get("/api/v1/affiliate/offers/")
    assert ok.status_code == 200


def test_inactive_user_key_is_401(affiliate):
    user = factories.UserFactory(affiliate=affiliate)
    plain = factories.api_key_for(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    response = _with_header(f"Bearer {plain}").get("/api/v1/affiliate/offers/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_key_is_stored_as_sha256_only(affiliate):
    user = factories.UserFactory(affiliate=affiliate)
    api_key, plain = api_key_create(user=user, name="ci")
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert plain.startswith("ocpa_")
    assert len(plain) >= 40
    assert stored.key_hash != plain
    assert stored.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert stored.prefix == plain[:11]
    assert plain not in {
        str(v) for v in ApiKey.objects.filter(pk=api_key.pk).values().get().values()
    }


def test_key_is_not_a_prefix_match(affiliate):
    user = factories.UserFactory(affiliate=affiliate)
    _api_key, plain = api_key_create(user=user, name="ci")
    assert _with_header(f"Bearer {plain[:-1]}").get("/api/v1/affiliate/offers/").status_code == 401
    assert _with_header(f"Bearer {plain}x").get("/api/v1/affiliate/offers/").status_code == 401


def test_session_login_is_not_an_api_credential(affiliate):
    """The API reads keys only: a logged-in admin session does not authenticate API calls."""
    user = factories.UserFactory(is_staff=True, is_superuser=True)
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/network/offers/")
    assert response.status_code == 401


# --- Roles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ADVERTISER_URLS + NETWORK_URLS)
def test_affiliate_key_is_403_outside_affiliate_endpoints(affiliate_client, url):
    response = affiliate_client.get(url)
    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "detail": "This endpoint is not for your account type.",
    }


@pytest.mark.parametrize("url", AFFILIATE_URLS + NETWORK_URLS)
def test_advertiser_key_is_403_outside_advertiser_endpoints(advertiser_client, url):
    response = advertiser_client.get(url)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("url", AFFILIATE_URLS + ADVERTISER_URLS)
def test_staff_key_is_403_outside_network_endpoints(staff_client, url):
    response = staff_client.get(url)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("url", ALL_URLS)
def test_key_of_user_without_account_is_403_everywhere(db, url):
    client = _with_header(f"Bearer {factories.api_key_for(factories.UserFactory())}")
    response = client.get(url)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_each_role_reaches_its_own_endpoints(affiliate_client, advertiser_client, staff_client):
    for url in AFFILIATE_URLS:
        assert affiliate_client.get(url).status_code == 200, url
    for url in ADVERTISER_URLS:
        assert advertiser_client.get(url).status_code == 200, url
    for url in NETWORK_URLS:
        assert staff_client.get(url).status_code == 200, url


def test_affiliate_cannot_post_to_read_only_endpoints(affiliate_client):
    response = affiliate_client.post("/api/v1/affiliate/offers/", {}, format="json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_scheme_is_case_insensitive(affiliate, scheme):
    plain = factories.api_key_for(factories.UserFactory(affiliate=affiliate))
    assert _with_header(f"{scheme} {plain}").get("/api/v1/affiliate/offers/").status_code == 200


def test_surrounding_spaces_in_key_are_ignored(affiliate):
    plain = factories.api_key_for(factories.UserFactory(affiliate=affiliate))
    assert _with_header(f"Bearer  {plain} ").get("/api/v1/affiliate/offers/").status_code == 200
