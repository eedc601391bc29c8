"""A postback's lead-quality history (earlier conversions from the IP, the device's sub ids, the
email seen before) is read in the statement that reads its click when it depends on the click
alone: the same History as read in a statement of its own, which it still is whenever the
postback brings a shopper IP or a phone, or the click was stored without its device key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversions import services
from apps.quality import signals as sig
from apps.quality.leads import device_key, email_key
from apps.quality.models import LeadFingerprint
from apps.quality.services import Reason
from apps.tracking import click_store
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = factories.ADVERTISER_TOKEN
EMAIL = "lead@example.com"
SHOPPER_IP = "73.1.2.3"  # a US residential ISP


@pytest.fixture
def history_reads(monkeypatch):
    """The histories read in a statement of their own (their arguments), while still read."""
    calls: list[dict] = []
    read_alone = sig.history_read

    def counted(**kwargs):
        calls.append(kwargs)
        return read_alone(**kwargs)

    monkeypatch.setattr(sig, "history_read", counted)
    return calls


@pytest.fixture
def seen_before(click, goal):
    """What the click's visitor already did: converted on the offer and (twice) on the
    affiliate's other offers from its IP, under sub ids a and b from its device, and the email
    already converted on the offer."""
    now = timezone.now()
    other_offer = factories.OfferFactory(advertiser=click.offer.advertiser)
    other_goal = factories.GoalFactory(offer=other_offer)
    for offer, conversion_goal in (
        (click.offer, goal),
        (other_offer, other_goal),
        (other_offer, other_goal),
    ):
        earlier_click = factories.ClickFactory(
            offer=offer, affiliate=click.affiliate, ip=click.ip, created_at=now - timedelta(hours=2)
        )
        factories.ConversionFactory(
            click=earlier_click, goal=conversion_goal, created_at=now - timedelta(hours=1)
        )
    for sub1, email in (("a", EMAIL), ("b", "")):
        elsewhere = factories.ClickFactory(offer=click.offer, ip="192.0.2.50")
        LeadFingerprint.objects.create(
            conversion=factories.ConversionFactory(click=elsewhere, goal=goal),
            offer_id=click.offer_id,
            affiliate_id=click.affiliate_id,
            sub1=sub1,
            ua_ip_hash=device_key(click.user_agent, click.ip),
            email_hash=email_key(email),
            created_at=now - timedelta(hours=1),
        )
    return sig.History(
        ip_on_offer=1, ip_on_affiliate=2, device_subs=frozenset({"a", "b"}), email_seen=1
    )


def _record(click, **extra: str):
    params = services.postback_params_parse({"click_id": click.click_id, "token": TOKEN, **extra})
    return services.conversion_record(params=params, request_ip="127.0.0.1", now=timezone.now())


def test_read_with_the_click_is_the_history_read_alone(click, seen_before):
    now = timezone.now()
    alone = sig.history_read(
        ip=click.ip,
        offer_id=click.offer_id,
        affiliate_id=click.affiliate_id,
        click_id=click.click_id,
        ua_ip_hash=device_key(click.user_agent, click.ip),
        email_hash=email_key(EMAIL),
        phone_hash="",
        now=now,
    )
    sql, params = sig.history_with_click(email_hash=email_key(EMAIL), now=now)
    read, extra = click_store.click_get_with(click_id=click.click_id, also=sql, also_params=params)

    assert read is not None and read.ua_ip_hash == device_key(click.user_agent, click.ip)
    assert sig.history_from_values(extra) == alone == seen_before


def test_a_postback_reads_its_history_with_its_click(click, seen_before, history_reads):
    click.sub1 = "c"
    click.save()
    conversion, created = _record(click, email=EMAIL)

    assert created and history_reads == []
    assert conversion.quality_reasons == [
        Reason.REPEAT_IP,
        Reason.REPEAT_IP_AFFILIATE,
        Reason.UA_IP_ACROSS_SUBS,
        Reason.EMAIL_SEEN,
    ]
    assert conversion.quality_evidence[Reason.UA_IP_ACROSS_SUBS] == {"sub_ids": 3}
    fingerprint = LeadFingerprint.objects.get(conversion=conversion)
    assert fingerprint.ua_ip_hash == click.ua_ip_hash  # what the next postback compares with


def test_a_shopper_ip_is_compared_in_a_read_of_its_own(click, goal, history_reads):
    earlier_click = factories.ClickFactory(offer=click.offer, ip="192.0.2.7")
    factories.ConversionFactory(click=earlier_click, goal=goal, ip=SHOPPER_IP)

    conversion, _ = _record(click, ip=SHOPPER_IP)

    assert [read["ip"] for read in history_reads] == [SHOPPER_IP]
    assert conversion.quality_reasons == [Reason.REPEAT_IP, Reason.COUNTRY_MISMATCH]


def test_a_phone_is_compared_in_a_read_of_its_own(click, history_reads):
    _record(click, phone="+44 20 7946 0958")
    assert len(history_reads) == 1 and history_reads[0]["phone_hash"]


def test_a_click_stored_without_its_device_key_is_compared_in_a_read_of_its_own(
    click, seen_before, history_reads
):
    type(click).objects.filter(pk=click.pk).update(ua_ip_hash="", sub1="c")
    conversion, _ = _record(click)

    assert len(history_reads) == 1
    assert Reason.UA_IP_ACROSS_SUBS in conversion.quality_reasons


def test_the_device_key_takes_the_ip_in_its_one_form():
    ua = "Mozilla/5.0"
    assert device_key(ua, "2001:DB8:0:0:0:0:0:1") == device_key(ua, "2001:db8::1")
    assert device_key(ua, None) == device_key(ua, "") == ""
    assert device_key(ua, "not an address") != ""  # never raises: hashed as written
