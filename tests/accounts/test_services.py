"""API keys and advertiser logins."""

from __future__ import annotations

import hashlib

import pytest
from django.contrib.auth.models import Group

from apps.accounts.models import ApiKey, Role, User
from apps.accounts.selectors import user_for_api_key
from apps.accounts.services import (
    ADVERTISER_GROUP,
    advertiser_user_create,
    api_key_create,
    api_key_revoke,
    secret_hash,
    secret_matches,
)
from apps.common.errors import DomainError
from tests import factories


def test_secret_hash_is_sha256_hex():
    assert secret_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert secret_matches("abc", secret_hash("abc"))
    assert not secret_matches("abd", secret_hash("abc"))


def test_api_key_create_stores_hash_and_prefix_only(affiliate):
    user = factories.UserFactory(affiliate=affiliate)
    api_key, plain = api_key_create(user=user, name="ci")
    row = ApiKey.objects.get(pk=api_key.pk)
    assert row.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert row.prefix == plain[:11]
    assert plain not in (row.key_hash, row.prefix, row.name)
    # Every key is new and random.
    _other, plain2 = api_key_create(user=user, name="ci")
    assert plain2 != plain
    assert len(plain) - len("ocpa_") >= 43  # 32 random bytes, url-safe


def test_user_for_api_key(affiliate):
    user = factories.UserFactory(affiliate=affiliate)
    api_key, plain = api_key_create(user=user, name="ci")
    assert user_for_api_key(key=plain) == user
    assert user_for_api_key(key="") is None
    assert user_for_api_key(key="x" * 201) is None
    assert user_for_api_key(key=api_key.key_hash) is None  # the hash is not a key
    api_key_revoke(api_key=api_key)
    assert user_for_api_key(key=plain) is None


def test_revoke_is_idempotent_and_keeps_first_time(affiliate):
    user = factories.UserFactory(affiliate=affiliate)
    api_key, _plain = api_key_create(user=user, name="ci")
    api_key_revoke(api_key=api_key)
    first = ApiKey.objects.get(pk=api_key.pk).revoked_at
    api_key_revoke(api_key=api_key)
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at == first


def test_roles(advertiser, affiliate):
    assert factories.UserFactory(affiliate=affiliate).role == Role.AFFILIATE
    assert factories.UserFactory(advertiser=advertiser, is_staff=True).role == Role.ADVERTISER
    assert factories.UserFactory(is_staff=True).role == Role.STAFF
    assert factories.UserFactory().role is None


def test_advertiser_user_create(advertiser):
    user = advertiser_user_create(
        username="adv", password="pw-123456789", advertiser_id=advertiser.pk
    )
    assert (user.is_staff, user.is_superuser, user.advertiser_id) == (True, False, advertiser.pk)
    assert user.check_password("pw-123456789")
    assert user.role == Role.ADVERTISER
    assert list(user.groups.values_list("name", flat=True)) == [ADVERTISER_GROUP]
    assert user.get_all_permissions() == {
        "offers.view_offer",
        "offers.add_offer",
        "offers.change_offer",
        "offers.view_goal",
        "offers.add_goal",
        "offers.change_goal",
        "offers.delete_goal",
        "offers.view_offercap",
        "offers.add_offercap",
        "offers.change_offercap",
        "offers.delete_offercap",
        "conversions.view_conversion",
    }


def test_advertiser_user_create_is_idempotent(advertiser):
    first = advertiser_user_create(
        username="adv", password="one-123456789", advertiser_id=advertiser.pk
    )
    again = advertiser_user_create(
        username="adv", password="two-123456789", advertiser_id=advertiser.pk
    )
    assert again.pk == first.pk
    assert User.objects.filter(username="adv").count() == 1
    assert Group.objects.filter(name=ADVERTISER_GROUP).count() == 1
    assert User.objects.get(pk=first.pk).check_password("two-123456789")


@pytest.mark.parametrize("existing", ["superuser", "affiliate", "other_advertiser"])
def test_advertiser_user_create_never_takes_over_another_account(advertiser, existing):
    other_advertiser = factories.AdvertiserFactory()
    kwargs = {
        "superuser": {"is_staff": True, "is_superuser": True},
        "affiliate": {"affiliate": factories.AffiliateFactory()},
        "other_advertiser": {"advertiser": other_advertiser, "is_staff": True},
    }[existing]
    victim = factories.UserFactory(username="taken", **kwargs)
    victim.save()
    before = User.objects.filter(pk=victim.pk).values().get()
    with pytest.raises(DomainError) as refused:
        advertiser_user_create(
            username="taken", password="pw-123456789", advertiser_id=advertiser.pk
        )
    assert refused.value.code == "username_taken"
    assert User.objects.filter(pk=victim.pk).values().get() == before
