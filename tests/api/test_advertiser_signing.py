"""An advertiser rotates its own HMAC signing secret over the API: shown once, the old one kept
valid for the overlap, scoped to the caller's advertiser, refused to everyone else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.advertisers.models import Advertiser
from apps.advertisers.services import advertiser_rotate_signing_secret
from apps.common.crypto import secret_decrypt

from .conftest import World

URL = "/api/v1/advertiser/signing-secret/"

pytestmark = pytest.mark.django_db


def test_get_shows_the_prefix_never_the_secret(world: World):
    plain = advertiser_rotate_signing_secret(advertiser=world.adv_x)
    response = world.client_x.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "signing_secret_prefix": plain[:12],
        "signing_secret_rotated_at": body["signing_secret_rotated_at"],
        "require_signature": False,
        "previous_prefix": "",
        "previous_valid_until": None,
    }
    assert body["signing_secret_rotated_at"] is not None
    assert plain not in response.content.decode()


def test_rotate_shows_the_new_secret_once_and_keeps_the_old_one_for_the_overlap(world: World):
    old = advertiser_rotate_signing_secret(advertiser=world.adv_x)
    before = timezone.now()

    response = world.client_x.post(URL, {"overlap_hours": 6}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    adv = Advertiser.objects.get(pk=world.adv_x.pk)
    assert body["secret"] == secret_decrypt(adv.signing_secret_encrypted)
    assert body["secret"].startswith("whsec_") and body["secret"] != old
    assert body["signing_secret_prefix"] == body["secret"][:12]
    assert body["previous_prefix"] == old[:12]
    until = parse_datetime(body["previous_valid_until"])
    assert before + timedelta(hours=6) <= until <= timezone.now() + timedelta(hours=6)
    assert secret_decrypt(adv.previous_signing_secret_encrypted) == old
    # Never shown again.
    assert body["secret"] not in world.client_x.get(URL).content.decode()


def test_rotate_without_an_overlap_uses_the_network_setting(world: World, settings):
    settings.ADVERTISER_SIGNING_SECRET_OVERLAP_HOURS = 48
    advertiser_rotate_signing_secret(advertiser=world.adv_x)
    before = timezone.now()
    body = world.client_x.post(URL, {}, format="json").json()
    until = parse_datetime(body["previous_valid_until"])
    assert before + timedelta(hours=48) <= until <= timezone.now() + timedelta(hours=48)


def test_the_first_secret_has_no_previous_one(world: World):
    body = world.client_x.post(URL, {}, format="json").json()
    assert (body["previous_prefix"], body["previous_valid_until"]) == ("", None)


def test_rotation_is_scoped_to_the_callers_advertiser(world: World):
    y_secret = advertiser_rotate_signing_secret(advertiser=world.adv_y)
    world.client_x.post(URL, {}, format="json")
    adv_y = Advertiser.objects.get(pk=world.adv_y.pk)
    assert secret_decrypt(adv_y.signing_secret_encrypted) == y_secret
    assert adv_y.previous_signing_secret_encrypted == ""
    assert world.client_y.get(URL).json()["signing_secret_prefix"] == y_secret[:12]


@pytest.mark.parametrize("hours", [-1, 24 * 14 + 1, "x", None])
def test_overlap_is_bounded(world: World, hours):
    response = world.client_x.post(URL, {"overlap_hours": hours}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert Advertiser.objects.get(pk=world.adv_x.pk).signing_secret_encrypted == ""


@pytest.mark.parametrize("method", ["get", "post"])
def test_only_advertisers_may_call(world: World, method: str):
    for client in (world.client_a, world.client_staff):
        response = getattr(client, method)(URL, {} if method == "post" else None, format="json")
        assert response.status_code == 403
        assert response.json()["code"]
    assert not Advertiser.objects.exclude(signing_secret_encrypted="").exists()


@pytest.mark.parametrize("method", ["put", "patch", "delete", "options", "head"])
def test_other_methods_are_never_500(world: World, method: str):
    response = getattr(world.client_x, method)(URL, {"junk": "x"})
    assert response.status_code < 500
