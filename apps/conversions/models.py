from __future__ import annotations

from django.db import models

from apps.common.money import AMOUNT_FIELD_KWARGS, Currency
from apps.offers.models import ConversionStatus
from apps.tracking.models import Click


class Conversion(models.Model):
    """An attributed conversion. Its id is the public conversion_id."""

    # What the conversion keeps of its click, forever (click partitions are dropped after the
    # retention period).
    click_id = models.CharField(max_length=32)
    click_created_at = models.DateTimeField()
    click_ip = models.GenericIPAddressField(null=True, blank=True)
    click_country = models.CharField(max_length=2, blank=True)
    click_is_bot = models.BooleanField(default=False)
    sub1 = models.CharField(max_length=255, blank=True)
    sub2 = models.CharField(max_length=255, blank=True)
    sub3 = models.CharField(max_length=255, blank=True)
    sub4 = models.CharField(max_length=255, blank=True)
    sub5 = models.CharField(max_length=255, blank=True)
    source_id = models.CharField(max_length=255, blank=True)
    aff_click_id = models.CharField(max_length=255, blank=True)
    creative_id = models.CharField(max_length=64, blank=True)
    offer = models.ForeignKey("offers.Offer", on_delete=models.PROTECT, related_name="conversions")
    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.PROTECT, related_name="conversions"
    )
    goal = models.ForeignKey("offers.Goal", on_delete=models.PROTECT, related_name="conversions")
    # The advertiser's order or lead id; "" when none was sent (then one per click and goal).
    order_id = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=10, choices=ConversionStatus.choices)
    currency = models.CharField(max_length=3, choices=Currency.choices)
    sale_amount = models.DecimalField(null=True, blank=True, max_digits=16, decimal_places=4)
    payout = models.DecimalField(**AMOUNT_FIELD_KWARGS)
    revenue = models.DecimalField(**AMOUNT_FIELD_KWARGS)
    ip = models.GenericIPAddressField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True)
    quality_score = models.PositiveSmallIntegerField()
    quality_reasons = models.JSONField(default=list, blank=True)
    quality_evidence = models.JSONField(
        default=dict, blank=True, help_text="Reason code -> what the signal saw (apps.quality)."
    )
    quality_rule_version = models.CharField(
        max_length=64, blank=True, help_text="Scoring engine and profile revision that scored it."
    )
    is_over_cap = models.BooleanField(
        default=False, help_text="Recorded after a conversion cap was reached: not paid."
    )
    adv1 = models.CharField(max_length=255, blank=True)
    adv2 = models.CharField(max_length=255, blank=True)
    adv3 = models.CharField(max_length=255, blank=True)
    adv4 = models.CharField(max_length=255, blank=True)
    adv5 = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["click_id", "goal", "order_id"], name="conversion_unique_click_goal_order"
            ),
            models.CheckConstraint(
                condition=models.Q(quality_score__gte=0) & models.Q(quality_score__lte=100),
                name="conversion_quality_score_0_100",
            ),
            models.CheckConstraint(
                condition=models.Q(payout__gte=0) & models.Q(revenue__gte=0),
                name="conversion_amounts_not_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["affiliate", "created_at"], name="conv_aff_time"),
            models.Index(fields=["offer", "created_at"], name="conv_offer_time"),
            models.Index(fields=["offer", "ip", "created_at"], name="conv_offer_ip_time"),
            models.Index(
                fields=["offer", "click_ip", "created_at"], name="conv_offer_click_ip_time"
            ),
        ]

    def __str__(self) -> str:
        return f"conversion {self.pk}"

    @property
    def click(self) -> Click | None:
        """The click itself, while its partition is kept."""
        from apps.tracking.click_store import click_get  # noqa: PLC0415 - tracking imports us

        return click_get(click_id=self.click_id)


class PostbackResult(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    DUPLICATE = "duplicate", "Duplicate"
    REJECTED = "rejected", "Rejected"


class InboundPostbackLog(models.Model):
    """Every call to /postback, good or bad, with the decision: the postback debugger."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=64)
    ip = models.GenericIPAddressField(null=True, blank=True)
    params = models.JSONField(default=dict, help_text="The request's parameters, truncated.")
    click_id = models.CharField(max_length=64, blank=True, db_index=True)
    order_id = models.CharField(max_length=255, blank=True, db_index=True)
    advertiser = models.ForeignKey(
        "advertisers.Advertiser", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    result = models.CharField(max_length=10, choices=PostbackResult.choices)
    reason = models.CharField(max_length=64, blank=True)
    http_status = models.PositiveSmallIntegerField()
    conversion = models.ForeignKey(
        Conversion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.result} {self.reason} ({self.created_at:%Y-%m-%d %H:%M:%S})"


class OutboundPostbackDelivery(models.Model):
    """One attempt to call an affiliate's postback URL for a conversion."""

    conversion = models.ForeignKey(Conversion, on_delete=models.CASCADE, related_name="deliveries")
    postback = models.ForeignKey(
        "partners.AffiliatePostback", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    conversion_status = models.CharField(max_length=10, choices=ConversionStatus.choices)
    attempt = models.PositiveSmallIntegerField()
    url = models.CharField(max_length=4000)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True)
    response_body = models.CharField(max_length=1024, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "outbound postback deliveries"
        constraints = [
            # One success per conversion, postback and status: a redelivered task is a no-op.
            models.UniqueConstraint(
                fields=["conversion", "postback", "conversion_status"],
                condition=models.Q(succeeded=True),
                name="delivery_one_success",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({'ok' if self.succeeded else 'failed'})"
