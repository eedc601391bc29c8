from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.accounts.models import ApiKey
from apps.accounts.selectors import user_for_api_key
from apps.accounts.services import api_key_create
from tests import factories

pytestmark = pytest.mark.django_db


def test_last_used_is_noted_at_most_every_five_minutes():
    user = factories.UserFactory()
    api_key, plain = api_key_create(user=user, name="t")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert user_for_api_key(key=plain) == user
    api_key.refresh_from_db()
    assert api_key.last_used_at == start

    with time_machine.travel(start + timedelta(minutes=4), tick=False):
        user_for_api_key(key=plain)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == start

    later = start + timedelta(minutes=5)
    with time_machine.travel(later, tick=False):
        user_for_api_key(key=plain)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == later


def test_unknown_key_notes_nothing():
    user = factories.UserFactory()
    api_key, _plain = api_key_create(user=user, name="t")
    assert user_for_api_key(key="ocpa_not-a-key") is None
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is None
