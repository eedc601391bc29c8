from __future__ import annotations

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from apps.common.redis import redis_client
from apps.tracking import catalog
from tests import factories


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis test db (never the dev one: see settings.test)."""
    redis_client().flushdb()
    yield


@pytest.fixture(autouse=True)
def _fresh_catalog():
    """The click path caches offers per process; every test starts from what the database says."""
    catalog._catalog.clear()
    yield
    catalog._catalog.clear()


@pytest.fixture
def top_of_a_minute():
    """The clock at the start of this minute, running: per-minute budgets (test fires,
    resends) are counted per clock minute, and a test that spends one through a view (which
    reads the clock itself) must not cross into the next minute halfway (seen once on CI)."""
    with time_machine.travel(timezone.now().replace(second=0, microsecond=0), tick=True):
        yield


@pytest.fixture
def redis_down(settings):
    """A Redis that refuses connections (a real closed port, not a fake client)."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    redis_client.cache_clear()
    yield
    redis_client.cache_clear()


@pytest.fixture
def advertiser(db):
    return factories.AdvertiserFactory()


@pytest.fixture
def offer(advertiser):
    return factories.OfferFactory(advertiser=advertiser)


@pytest.fixture
def goal(offer):
    return factories.GoalFactory(offer=offer, code="lead")


@pytest.fixture
def affiliate(db):
    return factories.AffiliateFactory()


@pytest.fixture
def access(offer, affiliate):
    return factories.OfferAccessFactory(offer=offer, affiliate=affiliate)


def _client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {factories.api_key_for(user)}")
    return client


@pytest.fixture
def affiliate_client(affiliate):
    return _client_for(factories.UserFactory(affiliate=affiliate))


@pytest.fixture
def advertiser_client(advertiser):
    return _client_for(factories.UserFactory(advertiser=advertiser, is_staff=True))


@pytest.fixture
def staff_client(db):
    return _client_for(factories.UserFactory(is_staff=True))
