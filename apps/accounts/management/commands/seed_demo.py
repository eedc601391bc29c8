"""A demo network, created idempotently: run it as often as you like, you get the same network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.accounts.models import ApiKey, User
from apps.accounts.services import (
    API_KEY_PREFIX,
    advertiser_user_create,
    api_key_create,
    secret_hash,
)
from apps.advertisers.models import Advertiser
from apps.advertisers.services import advertiser_rotate_postback_token
from apps.common.errors import DomainError
from apps.offers.models import (
    AccessStatus,
    ConversionStatus,
    Goal,
    Offer,
    OfferAccess,
    OfferVisibility,
    PayoutType,
)
from apps.offers.selectors import tracking_link
from apps.partners.models import Affiliate, AffiliatePostback, AffiliateStatus

DESTINATION = (
    "https://shop.example.com/landing?click_id={click_id}&aff={aff_id}&s1={sub1}&src={source_id}"
)
AFFILIATE_POSTBACK = (
    "https://tracker.example.net/postback?clickid={aff_click_id}&payout={payout}"
    "&currency={currency}&goal={goal}&status={status}&txid={conversion_id}"
)


def demo_secret(name: str, length: int = 32) -> str:
    """Stable per installation (derived from SECRET_KEY), so reseeding prints the same secrets."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"demo:{name}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")[:length]


def _api_key(user: User, name: str) -> str:
    """The user's stable demo key. If it was revoked, the next one in a stable series, so a reseed
    prints a key that works and running it again still creates nothing new."""
    for generation in range(1000):
        suffix = f":{generation}" if generation else ""
        plain = API_KEY_PREFIX + demo_secret(f"api-key:{user.username}{suffix}")
        existing = ApiKey.objects.filter(key_hash=secret_hash(plain)).first()
        if existing is None:
            api_key_create(user=user, name=name, key=plain)
            return plain
        if existing.revoked_at is None and existing.user_id == user.pk:
            return plain
    raise CommandError(f"no usable demo API key left for {user.username}")


def _goals(offer: Offer, lead: tuple[str, str], sale: tuple[str, str]) -> list[Goal]:
    lead_goal, _ = Goal.objects.update_or_create(
        offer=offer,
        code="lead",
        defaults={
            "name": "Lead",
            "payout_type": PayoutType.FIXED,
            "payout": Decimal(lead[0]),
            "revenue": Decimal(lead[1]),
            "is_default": True,
            "default_status": ConversionStatus.APPROVED,
        },
    )
    sale_goal, _ = Goal.objects.update_or_create(
        offer=offer,
        code="sale",
        defaults={
            "name": "Sale",
            "payout_type": PayoutType.PERCENT,
            "revenue_type": PayoutType.PERCENT,
            "payout": Decimal(sale[0]),
            "revenue": Decimal(sale[1]),
            "is_default": False,
            "default_status": ConversionStatus.PENDING,
        },
    )
    return [lead_goal, sale_goal]


class Command(BaseCommand):
    help = "Create (or refresh) the demo network and print how to use it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object only.")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        advertiser, _ = Advertiser.objects.get_or_create(name="Demo Advertiser")
        advertiser_token = demo_secret("advertiser-token", 24)
        advertiser_rotate_postback_token(advertiser=advertiser, token=advertiser_token)

        offers = []
        # The shop's thank-you page may use an image pixel (its code is on the offer's page).
        for name, visibility, lead, sale, pixels in (
            (
                "Demo Insurance Leads",
                OfferVisibility.APPROVAL_REQUIRED,
                ("2.50", "4.00"),
                ("10", "15"),
                [],
            ),
            ("Demo Shop Sales", OfferVisibility.PUBLIC, ("1.00", "1.50"), ("8", "12"), ["pixel"]),
        ):
            offer, _ = Offer.objects.update_or_create(
                advertiser=advertiser,
                name=name,
                defaults={
                    "visibility": visibility,
                    "destination_url": DESTINATION,
                    "fallback_url": "https://shop.example.com/",
                    "pixel_methods": pixels,
                },
            )
            offers.append((offer, _goals(offer, lead, sale)))

        first, _ = Affiliate.objects.update_or_create(
            name="Demo Affiliate One", defaults={"status": AffiliateStatus.ACTIVE}
        )
        second, _ = Affiliate.objects.update_or_create(
            name="Demo Affiliate Two",
            defaults={
                "status": AffiliateStatus.ACTIVE,
                "referrer": first,
                "timezone": "America/New_York",
            },
        )
        for affiliate in (first, second):
            for offer, _goals_unused in offers:
                OfferAccess.objects.update_or_create(
                    offer=offer, affiliate=affiliate, defaults={"status": AccessStatus.APPROVED}
                )
            AffiliatePostback.objects.get_or_create(affiliate=affiliate, url=AFFILIATE_POSTBACK)

        admin_password = demo_secret("admin-password", 16)
        admin, _ = User.objects.get_or_create(username="admin")
        admin.is_staff = admin.is_superuser = True
        admin.set_password(admin_password)
        admin.save()
        affiliate_user, _ = User.objects.get_or_create(
            username="demo-affiliate", defaults={"affiliate": first}
        )
        try:
            advertiser_user = advertiser_user_create(
                username="demo-advertiser",
                password=demo_secret("advertiser-password", 16),
                advertiser_id=advertiser.pk,
            )
        except DomainError as taken:
            raise CommandError(taken.message) from taken
        main_offer, main_goals = offers[0]
        info = {
            "advertiser_id": advertiser.pk,
            "advertiser_token": advertiser_token,
            "offer_id": main_offer.pk,
            "offer_ids": [offer.pk for offer, _g in offers],
            "goals": [
                {"code": g.code, "payout_type": g.payout_type, "payout": str(g.payout)}
                for g in main_goals
            ],
            "affiliate_id": first.pk,
            "second_affiliate_id": second.pk,
            "affiliate_api_key": _api_key(affiliate_user, "demo"),
            "advertiser_api_key": _api_key(advertiser_user, "demo"),
            "staff_api_key": _api_key(admin, "demo"),
            "tracking_link": tracking_link(offer_id=main_offer.pk, affiliate_id=first.pk),
            "admin_username": "admin",
            "admin_password": admin_password,
            "advertiser_username": "demo-advertiser",
            "advertiser_password": demo_secret("advertiser-password", 16),
        }
        if options["json"]:
            self.stdout.write(json.dumps(info))
            return
        base = settings.TRACKING_BASE_URL.rstrip("/")
        self.stdout.write(
            "Demo network ready.\n"
            f"  Admin:            {base}/admin/  user {info['admin_username']} / "
            f"{info['admin_password']}\n"
            f"  Advertiser admin: user {info['advertiser_username']} / "
            f"{info['advertiser_password']}\n"
            f"  Tracking link:    {info['tracking_link']}&sub1=hello\n"
            f"  Postback:         {base}/postback?click_id=CLICK_ID&goal=lead"
            f"&order_id=ORDER1&token={advertiser_token}\n"
            f"  Affiliate API:    curl -H 'Authorization: Bearer {info['affiliate_api_key']}' "
            f"{base}/api/v1/affiliate/stats/\n"
            f"  API docs:         {base}/api/docs/\n"
        )
