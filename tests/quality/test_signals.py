"""Each new signal alone: its code, its evidence and the exact score it gives."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.quality import signals as sig
from apps.quality.hosting import asn_is_hosting, asn_name_for_ip
from apps.quality.leads import email_check, phone_check
from apps.quality.models import GoalQualitySetting, LeadFingerprint
from apps.quality.services import QualityResult, Reason, quality_score
from tests import factories

pytestmark = pytest.mark.django_db

HOME_GB = "81.2.69.160"  # Andrews & Arnold, a UK ISP
HOME_US = "73.1.2.3"  # Comcast
AWS = "52.95.110.1"  # AMAZON-02


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def goal(db):
    return factories.GoalFactory(offer=factories.OfferFactory(min_seconds_to_convert=10))


@pytest.fixture
def click(goal, now):
    return factories.ClickFactory(
        offer=goal.offer, ip=HOME_GB, country="GB", created_at=now - timedelta(minutes=1)
    )


def _score(click, now, goal=None, **kwargs) -> QualityResult:
    kwargs.setdefault("conversion_ip", None)
    kwargs.setdefault("conversion_country", "")
    return quality_score(click=click, offer=click.offer, goal=goal, now=now, **kwargs)


# --- time ----------------------------------------------------------------------------------------


def test_goal_setting_overrides_the_offer_minimum(click, goal, now):
    GoalQualitySetting.objects.create(goal=goal, min_seconds=90, max_seconds=3600)
    result = _score(click, now, goal)
    assert result == QualityResult(45, [Reason.TOO_FAST])
    assert result.evidence == {Reason.TOO_FAST: {"seconds": 60.0, "min_seconds": 90.0}}


def test_goal_setting_defaults_to_15_seconds():
    assert GoalQualitySetting().min_seconds == 15.0


def test_too_slow(click, goal, now):
    GoalQualitySetting.objects.create(goal=goal, min_seconds=15, max_seconds=30)
    result = _score(click, now, goal)
    assert result == QualityResult(70, [Reason.TOO_SLOW])
    assert result.evidence[Reason.TOO_SLOW] == {"seconds": 60.0, "max_seconds": 30.0}


def test_too_slow_network_default_is_a_day(click, now):
    assert _score(click, click.created_at + timedelta(days=1)) == QualityResult(100, [])
    assert _score(click, click.created_at + timedelta(days=1, seconds=1)) == QualityResult(
        70, [Reason.TOO_SLOW]
    )


# --- IP ------------------------------------------------------------------------------------------


def test_asn_lookup_and_hosting_list():
    assert asn_name_for_ip(AWS) == "AMAZON-02"
    assert asn_is_hosting("AMAZON-02") and asn_is_hosting("Hetzner Online GmbH")
    assert not asn_is_hosting(asn_name_for_ip(HOME_GB))
    assert not asn_is_hosting(asn_name_for_ip(HOME_US))
    assert not asn_is_hosting("GOOGLE-FIBER")
    assert asn_name_for_ip("10.0.0.1") == asn_name_for_ip("garbage") == asn_name_for_ip(None) == ""


def test_datacenter_click_ip(click, now):
    click.ip = AWS
    result = _score(click, now)
    assert result == QualityResult(45, [Reason.DATACENTER_IP])
    assert result.evidence[Reason.DATACENTER_IP] == {
        "ip": AWS,
        "asn": "AMAZON-02",
        "source": "click",
    }


def test_datacenter_conversion_ip(click, now):
    result = _score(click, now, conversion_ip="95.216.1.1")
    assert result.reasons == [Reason.DATACENTER_IP]
    assert result.evidence[Reason.DATACENTER_IP]["source"] == "conversion"


def test_country_not_targeted(click, now):
    offer = click.offer
    offer.allowed_countries = ["US", "CA"]
    result = _score(click, now)
    assert result == QualityResult(60, [Reason.COUNTRY_NOT_TARGETED])
    assert result.evidence[Reason.COUNTRY_NOT_TARGETED] == {
        "country": "GB",
        "allowed": ["US", "CA"],
        "blocked": [],
    }
    offer.allowed_countries = []
    offer.blocked_countries = ["GB"]
    assert _score(click, now).reasons == [Reason.COUNTRY_NOT_TARGETED]
    click.country = ""  # unknown country: lower confidence, no signal
    assert _score(click, now) == QualityResult(100, [])


def test_repeat_ip_on_affiliate_needs_two_earlier(click, now):
    for _ in range(2):
        other = factories.ClickFactory(affiliate=click.affiliate, ip=HOME_GB)
        factories.ConversionFactory(click=other, created_at=now - timedelta(hours=1))
    result = _score(click, now)
    assert result == QualityResult(75, [Reason.REPEAT_IP_AFFILIATE])
    assert result.evidence[Reason.REPEAT_IP_AFFILIATE] == {"ip": HOME_GB, "earlier_conversions": 2}


# --- device --------------------------------------------------------------------------------------


def test_non_browser(click, now):
    click.non_browser = True
    assert _score(click, now) == QualityResult(45, [Reason.NON_BROWSER])
    click.is_bot = True  # a known bot: one reason, not two
    assert _score(click, now) == QualityResult(40, [Reason.BOT_USER_AGENT])


def test_same_device_across_three_sub_ids(click, goal, now):
    for sub in ("a", "b"):
        earlier = _score(click, now)
        conversion = factories.ConversionFactory(
            click=factories.ClickFactory(offer=click.offer, ip="192.0.2.50"), goal=goal
        )
        LeadFingerprint.objects.create(
            conversion=conversion,
            offer_id=click.offer_id,
            affiliate_id=click.affiliate_id,
            sub1=sub,
            ua_ip_hash=earlier.ua_ip_hash,
            created_at=now - timedelta(hours=1),
        )
    click.sub1 = "c"
    result = _score(click, now)
    assert result == QualityResult(45, [Reason.UA_IP_ACROSS_SUBS])
    assert result.evidence[Reason.UA_IP_ACROSS_SUBS] == {"sub_ids": 3}
    click.sub1 = "a"  # only two sub ids then
    assert _score(click, now) == QualityResult(100, [])


# --- lead data -----------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "a b@example.com", "x" * 300, "@@"])
def test_invalid_email(click, now, email):
    result = _score(click, now, email=email)
    assert result == QualityResult(45, [Reason.EMAIL_INVALID])
    assert result.email_hash == ""


def test_disposable_email(click, now):
    result = _score(click, now, email="Someone@Mailinator.com")
    assert result == QualityResult(45, [Reason.EMAIL_DISPOSABLE])
    assert result.evidence[Reason.EMAIL_DISPOSABLE] == {"domain": "mailinator.com"}
    assert email_check("a@sub.mailinator.com").disposable is True


def test_good_email_and_phone_score_100(click, now):
    result = _score(click, now, email="jane.doe@gmail.com", phone="07400 123456")
    assert result == QualityResult(100, [])
    assert len(result.email_hash) == len(result.phone_hash) == 64
    assert "jane" not in result.email_hash


@pytest.mark.parametrize("phone", ["12345", "07700 900123", "+1 202 555 0143", "garbage", "+"])
def test_invalid_phone_for_the_click_country(click, now, phone):
    assert _score(click, now, phone=phone) == QualityResult(45, [Reason.PHONE_INVALID])


def test_phone_check_details():
    assert phone_check("+44 7400 123456", country="GB").e164 == "+447400123456"
    assert phone_check("+44 7400 123456", country="").valid is True  # unknown country
    assert phone_check("x" * 40, country="GB").valid is False


def test_email_and_phone_seen_before_on_the_offer(click, goal, now):
    first = _score(click, now, email="jane.doe@gmail.com", phone="+447400123456")
    conversion = factories.ConversionFactory(
        click=factories.ClickFactory(offer=click.offer, ip="192.0.2.50"), goal=goal
    )
    LeadFingerprint.objects.create(
        conversion=conversion,
        offer_id=click.offer_id,
        affiliate_id=click.affiliate_id,
        email_hash=first.email_hash,
        phone_hash=first.phone_hash,
        created_at=now,
    )
    # Same person, written differently: still the same hashes.
    result = _score(click, now, email=" JANE.DOE@gmail.com", phone="07400 123456")
    assert result == QualityResult(0, [Reason.EMAIL_SEEN, Reason.PHONE_SEEN])
    assert result.evidence[Reason.EMAIL_SEEN] == {"earlier_conversions": 1}


def test_signal_functions_return_none_on_nothing():
    assert sig.signal_email(email="  ") is None
    assert sig.signal_phone(phone="", country="GB") is None
    assert sig.signal_country_mismatch(click_country="GB", conversion_country="") is None
    assert sig.signal_datacenter_ip(click_ip=None, conversion_ip="not-an-ip") is None
