from __future__ import annotations

import zoneinfo
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone")


class AffiliateStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PENDING = "pending", "Pending approval"
    SUSPENDED = "suspended", "Suspended"


class BillingPeriod(models.TextChoices):
    WEEKLY = "weekly", "Weekly (Monday to Sunday)"
    BIWEEKLY = "biweekly", "Every two weeks"
    MONTHLY = "monthly", "Monthly"


class Affiliate(models.Model):
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=AffiliateStatus.choices, default=AffiliateStatus.PENDING
    )
    referrer = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="referrals",
        help_text="The affiliate who referred this one: it earns a referral commission on this "
        "affiliate's commissions.",
    )
    referral_percent = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Percent of each of this affiliate's commissions paid to its referrer. "
        "Empty: the network's COMMISSIONS_REFERRAL_PERCENT.",
    )
    referral_ends_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Conversions from this moment on earn the referrer nothing. Empty: "
        "COMMISSIONS_REFERRAL_DAYS after this affiliate joined (no end when that is 0).",
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="Billing periods (a statement's week or month) and reports are in this time "
        "zone.",
    )
    billing_period = models.CharField(
        max_length=10, choices=BillingPeriod.choices, default=BillingPeriod.MONTHLY
    )
    minimum_payout = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Statements below this roll over. Empty: the network's default for the "
        "statement's currency (COMMISSIONS_MINIMUM_PAYOUT).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(referrer=models.F("id")), name="affiliate_not_own_referrer"
            ),
            models.CheckConstraint(
                condition=models.Q(referral_percent__gte=0) & models.Q(referral_percent__lte=100),
                name="affiliate_referral_percent_0_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class AffiliatePostback(models.Model):
    """A URL of the affiliate's own tracker that we call when one of its conversions happens.

    Scope: every offer (offer empty), one offer, or one goal of one offer.
    """

    affiliate = models.ForeignKey(Affiliate, on_delete=models.CASCADE, related_name="postbacks")
    offer = models.ForeignKey(
        "offers.Offer", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    goal = models.ForeignKey(
        "offers.Goal", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    url = models.URLField(max_length=2000, help_text="Macros: {click_id}, {payout}, {goal}, …")
    http_method = models.CharField(
        max_length=4,
        choices=[("GET", "GET"), ("POST", "POST (JSON body)")],
        default="GET",
    )
    fire_on_pending = models.BooleanField(
        default=False, help_text="Also fire for pending conversions, not only approved ones."
    )
    fire_on_reversal = models.BooleanField(
        default=False, help_text="Also fire when a conversion is rejected or reversed."
    )
    sign = models.BooleanField(
        default=False,
        help_text="Sign each call with the affiliate's signing keys (Standard Webhooks headers).",
    )
    is_active = models.BooleanField(default=True)
    # Set when deliveries kept failing for days (OUTBOUND_POSTBACK_PAUSE_AFTER_HOURS); the
    # affiliate sees it in the portal and API and resumes it after fixing the URL.
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.CharField(max_length=255, blank=True)
    # When it was last resumed: the pause rule only counts failures from here on, so a URL
    # resumed after a fix gets a whole new window before it can be paused again.
    resumed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(goal__isnull=True) | models.Q(offer__isnull=False),
                name="affiliate_postback_goal_needs_offer",
            ),
        ]

    def __str__(self) -> str:
        return self.url[:80]


class AffiliateSigningKey(models.Model):
    """A secret the affiliate's receiver uses to check our postbacks' signatures. Rotation: a new
    key is added and the old one keeps signing alongside it until it expires."""

    affiliate = models.ForeignKey(Affiliate, on_delete=models.CASCADE, related_name="signing_keys")
    secret_encrypted = models.TextField(editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}…"
