"""The click path's in-process catalog: no SQL once warm, and changes reach it after commit."""

from __future__ import annotations

import pytest

from apps.common.redis import redis_client
from apps.offers.models import CapMetric, CapPeriod, Offer, OfferCap, OfferStatus
from apps.partners.models import AffiliateStatus
from apps.tracking.catalog import VERSION_KEY
from apps.tracking.models import Click
from tests.pipeline.conftest import OFFER_FALLBACK, click_url, drain

pytestmark = pytest.mark.django_db


def _served(response) -> bool:
    assert response.status_code == 302
    return "ocpa_cid" in response.cookies


def test_a_warm_catalog_serves_clicks_without_sql(
    browser, offer, affiliate, django_assert_num_queries
):
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    with django_assert_num_queries(4):  # offer, its caps, the affiliate, its access
        assert _served(browser.get(url))
    with django_assert_num_queries(0):
        for _ in range(5):
            assert _served(browser.get(url))


def test_pausing_an_offer_reaches_the_click_path_once_committed(
    browser, offer, affiliate, settings, django_capture_on_commit_callbacks
):
    settings.CATALOG_CHECK_SECONDS = 0
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    assert _served(browser.get(url))

    with django_capture_on_commit_callbacks(execute=True):
        offer.status = OfferStatus.PAUSED
        offer.save()
    assert redis_client().get(VERSION_KEY) == b"1"  # what every other process watches

    response = browser.get(url)
    assert (response["Location"], response["X-Fallback-Reason"]) == (OFFER_FALLBACK, "not_runnable")
    drain()
    assert list(Click.objects.order_by("id").values_list("fallback_reason", flat=True)) == [
        "",
        "not_runnable",
    ]


def test_another_process_change_is_seen_at_the_next_version_check(
    browser, offer, affiliate, settings
):
    """A change made elsewhere arrives as a bumped version number; this process reads it at most
    once per CATALOG_CHECK_SECONDS and then reloads."""
    settings.CATALOG_CHECK_SECONDS = 3600
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    assert _served(browser.get(url))

    Offer.objects.filter(pk=offer.pk).update(status=OfferStatus.PAUSED)  # no signal here
    redis_client().incr(VERSION_KEY)  # what the other process's commit hook does
    assert _served(browser.get(url))  # not checked again yet

    settings.CATALOG_CHECK_SECONDS = 0
    assert browser.get(url)["X-Fallback-Reason"] == "not_runnable"


def test_without_redis_entries_still_expire_by_age(browser, offer, affiliate, settings, redis_down):
    settings.CATALOG_CHECK_SECONDS = 0  # checks, but cannot read the version
    settings.CATALOG_MAX_AGE_SECONDS = 3600
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    assert _served(browser.get(url))
    Offer.objects.filter(pk=offer.pk).update(status=OfferStatus.PAUSED)
    assert _served(browser.get(url))  # cached, and nobody can tell us otherwise

    settings.CATALOG_MAX_AGE_SECONDS = 0
    assert browser.get(url)["X-Fallback-Reason"] == "not_runnable"
    assert list(Click.objects.order_by("id").values_list("fallback_reason", flat=True)) == [
        "",
        "",
        "not_runnable",
    ]


def test_suspending_the_affiliate_invalidates_too(
    browser, offer, affiliate, settings, django_capture_on_commit_callbacks
):
    settings.CATALOG_CHECK_SECONDS = 0
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    assert _served(browser.get(url))
    with django_capture_on_commit_callbacks(execute=True):
        affiliate.status = AffiliateStatus.SUSPENDED
        affiliate.save()
    assert browser.get(url)["X-Fallback-Reason"] == "not_runnable"


def test_a_new_cap_invalidates_too(
    browser, offer, affiliate, settings, django_capture_on_commit_callbacks
):
    settings.CATALOG_CHECK_SECONDS = 0
    url = click_url(offer_id=offer.pk, aff_id=affiliate.pk)
    assert _served(browser.get(url))
    with django_capture_on_commit_callbacks(execute=True):
        OfferCap.objects.create(offer=offer, metric=CapMetric.CLICKS, period=CapPeriod.DAY, limit=1)
    assert _served(browser.get(url))  # the cap counts from now on
    assert browser.get(url)["X-Fallback-Reason"] == "click_cap_reached"
