"""seed_demo: idempotent, one JSON object with --json, and everything it prints works."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_revoke, secret_hash

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "advertiser_id",
    "advertiser_token",
    "offer_id",
    "goals",
    "affiliate_id",
    "affiliate_api_key",
    "advertiser_api_key",
    "staff_api_key",
    "tracking_link",
    "admin_username",
    "admin_password",
}


def _seed() -> dict:
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    text = out.getvalue()
    assert text.count("\n") <= 1
    return json.loads(text)


def _counts() -> dict[str, int]:
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model._meta.app_label in {"accounts", "advertisers", "offers", "partners", "auth"}
    }


def _api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.mark.django_db
def test_seed_twice_creates_no_duplicates_and_prints_the_same():
    first = _seed()
    counts = _counts()
    second = _seed()
    assert _counts() == counts
    assert second == first
    assert counts["advertisers.Advertiser"] == 1
    assert counts["offers.Offer"] == 2
    assert counts["offers.Goal"] == 4
    assert counts["partners.Affiliate"] == 2
    assert counts["accounts.ApiKey"] == 3


@pytest.mark.django_db
def test_seed_json_keys_and_values():
    info = _seed()
    assert set(info) >= KEYS
    assert [g["code"] for g in info["goals"]] == ["lead", "sale"]
    link = urlsplit(info["tracking_link"])
    assert parse_qs(link.query) == {
        "offer_id": [str(info["offer_id"])],
        "aff_id": [str(info["affiliate_id"])],
    }


@pytest.mark.django_db
def test_seeded_keys_work_for_their_audience():
    info = _seed()
    affiliate = _api(info["affiliate_api_key"])
    response = affiliate.get("/api/v1/affiliate/offers/")
    assert response.status_code == 200
    assert info["offer_id"] in [row["id"] for row in response.json()["results"]]
    assert affiliate.get("/api/v1/network/offers/").status_code == 403

    advertiser = _api(info["advertiser_api_key"])
    offers = advertiser.get("/api/v1/advertiser/offers/").json()["results"]
    assert {row["advertiser_id"] for row in offers} == {info["advertiser_id"]}
    assert _api(info["staff_api_key"]).get("/api/v1/network/affiliates/").status_code == 200


@pytest.mark.django_db
def test_seeded_logins_work():
    info = _seed()
    assert Client().login(username=info["admin_username"], password=info["admin_password"])
    assert Client().login(
        username=info["advertiser_username"], password=info["advertiser_password"]
    )


@pytest.mark.django_db
def test_demo_tracking_link_redirects_with_click_id():
    info = _seed()
    link = urlsplit(info["tracking_link"])
    response = Client().get(
        f"{link.path}?{link.query}&sub1=hello",
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537",
        REMOTE_ADDR="81.2.69.160",
    )
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.netloc == "shop.example.com"
    query = parse_qs(target.query)
    assert len(query["click_id"]) == 1
    assert query["click_id"][0] not in ("", "{click_id}")
    assert query["aff"] == [str(info["affiliate_id"])]
    assert query["s1"] == ["hello"]


@pytest.mark.django_db
def test_reseed_after_revoking_the_demo_key_prints_a_working_key():
    info = _seed()
    api_key_revoke(api_key=ApiKey.objects.get(key_hash=secret_hash(info["affiliate_api_key"])))
    assert _api(info["affiliate_api_key"]).get("/api/v1/affiliate/offers/").status_code == 401

    again = _seed()
    assert again["affiliate_api_key"] != info["affiliate_api_key"]
    assert _api(again["affiliate_api_key"]).get("/api/v1/affiliate/offers/").status_code == 200
    keys = ApiKey.objects.count()
    assert _seed()["affiliate_api_key"] == again["affiliate_api_key"]
    assert ApiKey.objects.count() == keys


@pytest.mark.django_db(transaction=True)
def test_json_stdout_is_exactly_one_object():
    """In a real process: nothing else (logging, warnings) lands on stdout."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": "postgres://{USER}@{HOST}:{PORT}/{NAME}".format(**connection.settings_dict),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)  # raises on anything but one JSON document
    assert isinstance(info, dict)
    assert set(info) >= KEYS
    assert result.stdout.count("\n") <= 1
    response = _api(info["affiliate_api_key"]).get("/api/v1/affiliate/stats/")
    assert response.status_code == 200


@pytest.mark.django_db
def test_demo_advertiser_token_is_accepted_on_postback():
    info = _seed()
    link = urlsplit(info["tracking_link"])
    client = Client()
    click = client.get(
        f"{link.path}?{link.query}",
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537",
        REMOTE_ADDR="81.2.69.160",
    )
    click_id = parse_qs(urlsplit(click["Location"]).query)["click_id"][0]
    bad = client.get(
        "/postback", {"click_id": click_id, "goal": "lead", "order_id": "O1", "token": "wrong"}
    )
    assert bad.json()["result"] == "rejected"
    good = client.get(
        "/postback",
        {"click_id": click_id, "goal": "lead", "order_id": "O1", "token": info["advertiser_token"]},
    )
    assert good.status_code == 200, good.json()
    assert good.json()["result"] == "accepted"


@pytest.mark.django_db
def test_seed_without_json_prints_instructions():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert text.startswith("Demo network ready.")
    assert "/api/docs/" in text
