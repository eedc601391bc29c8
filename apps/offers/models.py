from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from apps.common.fields import ChoiceArrayField
from apps.common.money import Currency
from apps.partners.models import validate_timezone

http_url = URLValidator(schemes=["http", "https"])


class OfferStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class OfferVisibility(models.TextChoices):
    PUBLIC = "public", "Public"
    APPROVAL_REQUIRED = "approval_required", "Approval required"
    PRIVATE = "private", "Private"


class ConversionStatus(models.TextChoices):
    APPROVED = "approved", "Approved"
    PENDING = "pending", "Pending"
    REJECTED = "rejected", "Rejected"
    REVERSED = "reversed", "Reversed"


class PayoutType(models.TextChoices):
    FIXED = "fixed", "Fixed amount"
    PERCENT = "percent", "Percent of sale amount"
    BOTH = "both", "Fixed amount plus percent of sale amount"


class DeviceType(models.TextChoices):
    DESKTOP = "desktop", "Desktop"
    MOBILE = "mobile", "Mobile"
    TABLET = "tablet", "Tablet"
    OTHER = "other", "Other"


class OsFamily(models.TextChoices):
    WINDOWS = "windows", "Windows"
    MACOS = "macos", "macOS"
    LINUX = "linux", "Linux"
    IOS = "ios", "iOS"
    ANDROID = "android", "Android"
    OTHER = "other", "Other"


def validate_country_code(value: str) -> None:
    if len(value) != 2 or not value.isascii() or not value.isalpha() or not value.isupper():
        raise ValidationError(f"{value!r} is not a two-letter ISO country code (e.g. US, GB)")


class PixelMethod(models.TextChoices):
    """The browser pixels an offer may take conversions from (server postbacks are always
    taken); the values are the conversions' `method`."""

    PIXEL = "pixel", "Image pixel"
    IFRAME = "iframe", "Iframe pixel"
    JS = "js", "JavaScript tag"


def _choice_list(choices: type[models.TextChoices], **kwargs: Any) -> ChoiceArrayField:
    return ChoiceArrayField(
        models.CharField(max_length=10, choices=choices.choices),
        blank=True,
        default=list,
        **kwargs,
    )


class Offer(models.Model):
    advertiser = models.ForeignKey(
        "advertisers.Advertiser", on_delete=models.PROTECT, related_name="offers"
    )
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=16, choices=OfferStatus.choices, default=OfferStatus.ACTIVE
    )
    visibility = models.CharField(
        max_length=20, choices=OfferVisibility.choices, default=OfferVisibility.APPROVAL_REQUIRED
    )
    destination_url = models.CharField(
        max_length=2000,
        validators=[http_url],
        help_text="Where clicks go. Macros: {click_id}, {aff_id}, {sub1}…{sub5}, {source_id}, …",
    )
    fallback_url = models.CharField(
        max_length=2000,
        blank=True,
        validators=[http_url],
        help_text="Where clicks go when the offer cannot take them.",
    )
    fallback_offer = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Clicks this offer cannot take (targeting, caps) go here first.",
    )
    currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.USD)
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="Caps count days, weeks and months in this time zone.",
    )
    # Targeting: empty means any.
    allowed_countries = ArrayField(
        models.CharField(max_length=2, validators=[validate_country_code]),
        blank=True,
        default=list,
    )
    blocked_countries = ArrayField(
        models.CharField(max_length=2, validators=[validate_country_code]),
        blank=True,
        default=list,
    )
    allowed_devices = _choice_list(DeviceType)
    allowed_os = _choice_list(OsFamily)
    pixel_methods = _choice_list(
        PixelMethod,
        help_text="Pixels this offer takes conversions from, besides server postbacks (always "
        "taken). A pixel carries no secret: any browser with a click cookie of this offer can "
        "fire it. Leave empty unless the advertiser's server cannot send postbacks.",
    )
    attribution_window_days = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(365)]
    )
    hold_days = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(365)],
        help_text="Commissions stay pending this many days after the conversion before they can "
        "be paid out (the advertiser's scrub window).",
    )
    # Lead quality, first cut (see apps.quality).
    min_seconds_to_convert = models.PositiveIntegerField(
        default=10, help_text="A conversion sooner than this after its click is suspicious."
    )
    quality_threshold = models.PositiveSmallIntegerField(
        default=50,
        validators=[MaxValueValidator(100)],
        help_text="Conversions scoring below this are held as pending instead of approved.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    def clean(self) -> None:
        if self.fallback_offer_id is not None:
            if self.pk is not None and self.fallback_offer_id == self.pk:
                raise ValidationError({"fallback_offer": "An offer cannot be its own fallback."})
            fallback = Offer.objects.filter(pk=self.fallback_offer_id).first()
            if fallback is None or fallback.advertiser_id != self.advertiser_id:
                raise ValidationError(
                    {"fallback_offer": "The fallback offer must belong to the same advertiser."}
                )
        host = urlsplit(self.destination_url).netloc if self.destination_url else ""
        if "{" in host or "}" in host:
            # A macro in the host would let whoever fills it choose where clicks go.
            raise ValidationError({"destination_url": "Macros may not be used in the host."})
        for field in ("destination_url", "fallback_url"):
            value = getattr(self, field)
            if value and any(ch.isspace() for ch in value):
                raise ValidationError({field: "A URL may not contain white space."})


class PayoutFields(models.Model):
    """The affiliate's payout: fixed, percent of the sale amount, or both. A goal's, and the
    custom payouts and volume tiers that override it (apps.offers.pricing reads these)."""

    payout_type = models.CharField(
        max_length=10,
        choices=PayoutType.choices,
        default=PayoutType.FIXED,
        help_text="How the affiliate's payout is computed.",
    )
    payout = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Paid to the affiliate: the fixed amount (fixed, both) or the percent of the "
        "sale amount (percent).",
    )
    payout_percent = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1000"))],
        help_text="Payout type 'both': the percent of the sale amount added to the fixed payout.",
    )

    class Meta:
        abstract = True


class Goal(PayoutFields):
    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="goals")
    code = models.SlugField(max_length=50, help_text="What the advertiser sends as `goal`.")
    name = models.CharField(max_length=100)
    revenue_type = models.CharField(
        max_length=10,
        choices=PayoutType.choices,
        default=PayoutType.FIXED,
        help_text="How the advertiser's revenue is computed.",
    )
    revenue = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Charged to the advertiser: the fixed amount (fixed, both) or the percent.",
    )
    revenue_percent = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1000"))],
        help_text="Revenue type 'both': the percent of the sale amount added to the fixed revenue.",
    )
    is_repeatable = models.BooleanField(
        default=False,
        help_text="May convert more than once per click (rebills, deposits), each with its own "
        "order id. Otherwise a click converts on this goal once.",
    )
    requires_goal = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only accepted after the same click converted on this earlier goal.",
    )
    default_status = models.CharField(
        max_length=10,
        choices=[(s.value, s.label) for s in ConversionStatus if s != ConversionStatus.REVERSED],
        default=ConversionStatus.APPROVED,
    )
    is_default = models.BooleanField(default=False, help_text="Used when a postback names no goal.")

    class Meta:
        ordering = ["offer_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["offer", "code"], name="goal_code_unique_per_offer"),
            models.UniqueConstraint(
                fields=["offer"],
                condition=models.Q(is_default=True),
                name="goal_one_default_per_offer",
            ),
            models.CheckConstraint(
                condition=models.Q(payout__gte=0) & models.Q(revenue__gte=0),
                name="goal_amounts_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(payout_percent__gte=0) & models.Q(revenue_percent__gte=0),
                name="goal_percents_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offer_id}:{self.code}"

    def clean(self) -> None:
        if self.requires_goal_id is not None:
            required = Goal.objects.filter(pk=self.requires_goal_id).first()
            if required is None or required.offer_id != self.offer_id:
                raise ValidationError({"requires_goal": "Must be another goal of this offer."})
            if self.pk is not None and required.pk == self.pk:
                raise ValidationError({"requires_goal": "A goal cannot require itself."})


class AccessStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class OfferAccess(models.Model):
    """An affiliate's standing on an offer: applied (pending), approved or rejected."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="accesses")
    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.CASCADE, related_name="offer_accesses"
    )
    status = models.CharField(
        max_length=10, choices=AccessStatus.choices, default=AccessStatus.PENDING
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "offer accesses"
        constraints = [
            models.UniqueConstraint(fields=["offer", "affiliate"], name="offer_access_unique"),
        ]

    def __str__(self) -> str:
        return f"offer {self.offer_id} x affiliate {self.affiliate_id}: {self.status}"


class CapMetric(models.TextChoices):
    CLICKS = "clicks", "Clicks"
    CONVERSIONS = "conversions", "Conversions"


class CapPeriod(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    TOTAL = "total", "Total"


class OfferCap(models.Model):
    """A limit on clicks or conversions per period, for the offer, one affiliate on it, or a goal.

    Counted in real time in Redis (in the offer's timezone) and reconciled with PostgreSQL.
    """

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="caps")
    affiliate = models.ForeignKey(
        "partners.Affiliate",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Empty: the cap is for all affiliates together.",
    )
    goal = models.ForeignKey(
        Goal,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="caps",
        help_text="Conversion caps only: count this goal alone.",
    )
    metric = models.CharField(max_length=12, choices=CapMetric.choices)
    period = models.CharField(max_length=8, choices=CapPeriod.choices)
    limit = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(goal__isnull=True) | models.Q(metric="conversions"),
                name="offer_cap_goal_only_for_conversions",
            ),
        ]

    def __str__(self) -> str:
        scope = f"aff {self.affiliate_id}" if self.affiliate_id else "all affiliates"
        return f"{self.limit} {self.metric}/{self.period} ({scope})"

    def clean(self) -> None:
        if self.goal_id is None:
            return
        if Goal.objects.filter(pk=self.goal_id).values_list("offer_id", flat=True).first() != (
            self.offer_id
        ):
            raise ValidationError({"goal": "The goal must belong to this offer."})
        if self.metric != CapMetric.CONVERSIONS:
            raise ValidationError({"goal": "Only conversion caps can count one goal."})


class CustomPayout(PayoutFields):
    """The affiliate's own payout on an offer, overriding the goal's: for one goal or all, and
    for one country of the click or all. The most specific row wins (goal + country, goal,
    country, offer)."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="custom_payouts")
    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.CASCADE, related_name="custom_payouts"
    )
    goal = models.ForeignKey(
        Goal,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="custom_payouts",
        help_text="Empty: every goal of the offer.",
    )
    country = models.CharField(
        max_length=2,
        blank=True,
        validators=[validate_country_code],
        help_text="The click's country; empty: any country.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["offer", "affiliate", "goal", "country"],
                nulls_distinct=False,
                name="custom_payout_unique_scope",
            ),
            models.CheckConstraint(
                condition=models.Q(payout__gte=0) & models.Q(payout_percent__gte=0),
                name="custom_payout_not_negative",
            ),
        ]

    def __str__(self) -> str:
        scope = f"goal {self.goal_id}" if self.goal_id else "all goals"
        return f"affiliate {self.affiliate_id} on offer {self.offer_id} ({scope} {self.country})"

    def clean(self) -> None:
        if (
            self.goal_id is not None
            and not Goal.objects.filter(pk=self.goal_id, offer_id=self.offer_id).exists()
        ):
            raise ValidationError({"goal": "The goal must belong to this offer."})


class CouponCode(models.Model):
    """A code assigned to an affiliate on an offer: a sale reported with it is attributed to the
    affiliate without a click (influencers, podcasts, offline)."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="coupon_codes")
    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.CASCADE, related_name="coupon_codes"
    )
    # Stored upper-case: shoppers type codes in any case.
    code = models.CharField(max_length=64)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["offer", "code"], name="coupon_code_unique_per_offer"),
        ]

    def __str__(self) -> str:
        return self.code

    def save(self, *args: object, **kwargs: object) -> None:
        self.code = self.code.strip().upper()
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class PayoutTier(PayoutFields):
    """A volume tier: once an affiliate has N approved conversions on the offer in one calendar
    month (the offer's time zone, like its caps), conversions from that moment to the end of the
    month earn this payout instead of their own, when it is higher.

    The moment is the creation time of the Nth approved (not over-cap) conversion, ordered by
    creation time; the accrual job records it once per affiliate, tier and month
    (commissions.TierReached) and never moves it: earlier conversions are not re-priced, and a
    later rejection does not take the tier away. The next month starts from zero.
    """

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="payout_tiers")
    name = models.CharField(max_length=100, help_text="Shown to the affiliate, e.g. 'Gold'.")
    goal = models.ForeignKey(
        Goal,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="payout_tiers",
        help_text="Count and pay this goal's conversions only. Empty: every goal of the offer.",
    )
    affiliate = models.ForeignKey(
        "partners.Affiliate",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="payout_tiers",
        help_text="A private tier for this affiliate only. Empty: every affiliate.",
    )
    threshold = models.PositiveIntegerField(
        validators=[MinValueValidator(1)],
        help_text="N: reached by the affiliate's Nth approved conversion in a calendar month; "
        "that conversion and every later one in the month earn this payout.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["offer_id", "threshold", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["offer", "goal", "affiliate", "threshold"],
                nulls_distinct=False,
                name="payout_tier_unique_scope",
            ),
            models.CheckConstraint(
                condition=models.Q(threshold__gte=1), name="payout_tier_threshold_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(payout__gte=0) & models.Q(payout_percent__gte=0),
                name="payout_tier_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.threshold}+ / month, offer {self.offer_id})"

    def clean(self) -> None:
        if (
            self.goal_id is not None
            and not Goal.objects.filter(pk=self.goal_id, offer_id=self.offer_id).exists()
        ):
            raise ValidationError({"goal": "The goal must belong to this offer."})
