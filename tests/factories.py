from __future__ import annotations

from decimal import Decimal

import factory
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import api_key_create, secret_hash
from apps.advertisers.models import Advertiser
from apps.conversions.models import Conversion
from apps.offers.models import (
    AccessStatus,
    ConversionStatus,
    Goal,
    Offer,
    OfferAccess,
    OfferVisibility,
    PayoutType,
)
from apps.partners.models import Affiliate, AffiliatePostback, AffiliateStatus
from apps.quality.leads import device_key
from apps.tracking.models import Click

ADVERTISER_TOKEN = "adv-token-123"


class AdvertiserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Advertiser

    name = factory.Sequence(lambda n: f"Advertiser {n}")
    postback_token_hash = secret_hash(ADVERTISER_TOKEN)
    postback_token_prefix = ADVERTISER_TOKEN[:6]


class OfferFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offer

    advertiser = factory.SubFactory(AdvertiserFactory)
    name = factory.Sequence(lambda n: f"Offer {n}")
    visibility = OfferVisibility.APPROVAL_REQUIRED
    destination_url = "https://shop.example.com/lp?cid={click_id}&s1={sub1}"
    fallback_url = "https://shop.example.com/fallback"
    min_seconds_to_convert = 0


class GoalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Goal

    offer = factory.SubFactory(OfferFactory)
    code = factory.Sequence(lambda n: f"goal{n}")
    name = "Lead"
    payout_type = PayoutType.FIXED
    payout = Decimal("2.50")
    revenue = Decimal("4.00")
    default_status = ConversionStatus.APPROVED
    is_default = True


class AffiliateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Affiliate

    name = factory.Sequence(lambda n: f"Affiliate {n}")
    status = AffiliateStatus.ACTIVE


class OfferAccessFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OfferAccess

    offer = factory.SubFactory(OfferFactory)
    affiliate = factory.SubFactory(AffiliateFactory)
    status = AccessStatus.APPROVED


class ClickFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Click

    click_id = factory.Sequence(lambda n: f"clk{n:019d}")
    offer = factory.SubFactory(OfferFactory)
    affiliate = factory.SubFactory(AffiliateFactory)
    created_at = factory.LazyFunction(timezone.now)
    ip = "81.2.69.160"
    country = "GB"
    user_agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari"
    # As the click store computes it (apps.tracking.enrichment.click_enrich).
    ua_ip_hash = factory.LazyAttribute(lambda click: device_key(click.user_agent, click.ip))


class ConversionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversion

    class Params:
        # The click the conversion came from; its fields are copied like the service does.
        click = factory.SubFactory(ClickFactory)

    offer = factory.SelfAttribute("click.offer")
    affiliate = factory.SelfAttribute("click.affiliate")
    click_id = factory.SelfAttribute("click.click_id")
    click_created_at = factory.SelfAttribute("click.created_at")
    click_ip = factory.SelfAttribute("click.ip")
    click_country = factory.SelfAttribute("click.country")
    click_is_bot = factory.SelfAttribute("click.is_bot")
    sub1 = factory.SelfAttribute("click.sub1")
    sub2 = factory.SelfAttribute("click.sub2")
    sub3 = factory.SelfAttribute("click.sub3")
    sub4 = factory.SelfAttribute("click.sub4")
    sub5 = factory.SelfAttribute("click.sub5")
    source_id = factory.SelfAttribute("click.source_id")
    aff_click_id = factory.SelfAttribute("click.aff_click_id")
    creative_id = factory.SelfAttribute("click.creative_id")
    goal = factory.SubFactory(GoalFactory, offer=factory.SelfAttribute("..offer"))
    order_id = factory.Sequence(lambda n: f"order-{n}")
    status = ConversionStatus.APPROVED
    currency = "USD"
    payout = Decimal("2.50")
    revenue = Decimal("4.00")
    quality_score = 100
    created_at = factory.LazyFunction(timezone.now)


class AffiliatePostbackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AffiliatePostback

    affiliate = factory.SubFactory(AffiliateFactory)
    url = "https://tracker.example.net/pb?cid={click_id}&payout={payout}"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-123456789")


def api_key_for(user: User) -> str:
    _key, plain = api_key_create(user=user, name="test")
    return plain
