from __future__ import annotations

from django.db import models

from apps.common.money import AMOUNT_FIELD_KWARGS, Currency
from apps.offers.models import ConversionStatus
from apps.tracking.models import Click


class ConversionMethod(models.TextChoices):
    """How the advertiser reported the conversion."""

    POSTBACK = "postback", "Server postback"
    PIXEL = "pixel", "Image pixel"
    IFRAME = "iframe", "Iframe pixel"
    JS = "js", "JavaScript tag"
    COUPON = "coupon", "Coupon code"


class Conversion(models.Model):
    """An attributed conversion. Its id is the public conversion_id."""

    # What the conversion keeps of its click, forever (click partitions are dropped after the
    # retention period).
    # Empty, with no click time, for a conversion attributed by coupon code.
    click_id = models.CharField(max_length=32, blank=True)
    click_created_at = models.DateTimeField(null=True, blank=True)
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
    # offer and affiliate lookups use the (offer|affiliate, created_at) indexes: one index less
    # for each to update on every postback.
    offer = models.ForeignKey(
        "offers.Offer", on_delete=models.PROTECT, related_name="conversions", db_index=False
    )
    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.PROTECT, related_name="conversions", db_index=False
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
    method = models.CharField(
        max_length=10, choices=ConversionMethod.choices, default=ConversionMethod.POSTBACK
    )
    coupon_code = models.CharField(max_length=64, blank=True)
    # Copied from the goal when recorded: a goal that converts once per click (not repeatable)
    # is held to that by a partial unique index, whatever the order id.
    goal_once = models.BooleanField(default=False, editable=False)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["click_id", "goal", "order_id"], name="conversion_unique_click_goal_order"
            ),
            models.UniqueConstraint(
                fields=["click_id", "goal"],
                condition=models.Q(goal_once=True) & ~models.Q(click_id=""),
                name="conversion_once_per_click_goal",
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
            # Repeat-IP signals (on the offer and across the affiliate's offers): few rows per IP.
            models.Index(fields=["ip", "created_at"], name="conv_ip_time"),
            models.Index(fields=["click_ip", "created_at"], name="conv_click_ip_time"),
            models.Index(fields=["order_id"], name="conv_order_id"),
        ]

    def __str__(self) -> str:
        return f"conversion {self.pk}"

    @property
    def click(self) -> Click | None:
        """The click itself, while its partition is kept."""
        from apps.tracking.click_store import click_get  # noqa: PLC0415 - tracking imports us

        return click_get(click_id=self.click_id)


class StatusChangeSource(models.TextChoices):
    POSTBACK = "postback", "Advertiser postback"
    REVERSAL_POSTBACK = "reversal_postback", "Reversal postback"
    API = "api", "API"
    ADMIN = "admin", "Admin"
    SCRUB = "scrub", "Advertiser scrub"
    RECONCILIATION = "reconciliation", "Reconciliation upload"
    QUALITY_REVIEW = "quality_review", "Quality review"
    QUALITY_RESCORE = "quality_rescore", "Quality re-score"


class ConversionStatusChange(models.Model):
    """Who moved a conversion from one status to another, when and why. Append-only."""

    conversion = models.ForeignKey(
        Conversion, on_delete=models.CASCADE, related_name="status_changes"
    )
    old_status = models.CharField(max_length=10, choices=ConversionStatus.choices)
    new_status = models.CharField(max_length=10, choices=ConversionStatus.choices)
    source = models.CharField(max_length=20, choices=StatusChangeSource.choices)
    user = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["conversion_id", "id"]
        indexes = [models.Index(fields=["conversion", "created_at"], name="status_change_conv")]

    def __str__(self) -> str:
        return f"{self.old_status} -> {self.new_status} ({self.source})"


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
    click_id = models.CharField(max_length=64, blank=True)
    order_id = models.CharField(max_length=255, blank=True)
    advertiser = models.ForeignKey(
        "advertisers.Advertiser",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # inbound_log_adv_time leads with it
    )
    headers = models.JSONField(
        default=dict, blank=True, help_text="The request's relevant headers, secrets masked."
    )
    body = models.TextField(blank=True, help_text="The raw body, truncated, secrets masked.")
    result = models.CharField(max_length=10, choices=PostbackResult.choices)
    reason = models.CharField(max_length=64, blank=True)
    http_status = models.PositiveSmallIntegerField()
    conversion = models.ForeignKey(
        Conversion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        # Every postback writes a row, and every index is a write more: only what the debugger
        # looks rows up by (exact click and order ids, advertiser and time, time for pruning).
        # No LIKE-pattern twins (the debugger matches ids exactly) and none on result or reason
        # (a handful of values, filtered within the advertiser's or the day's rows).
        indexes = [
            models.Index(fields=["advertiser", "created_at"], name="inbound_log_adv_time"),
            models.Index(fields=["click_id"], name="inbound_log_click_id"),
            models.Index(fields=["order_id"], name="inbound_log_order_id"),
        ]

    def __str__(self) -> str:
        return f"{self.result} {self.reason} ({self.created_at:%Y-%m-%d %H:%M:%S})"


class OutboxState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Gave up"
    CANCELLED = "cancelled", "Cancelled"


# States a row never leaves by itself: only these are pruned after OUTBOUND_OUTBOX_RETENTION_DAYS.
SETTLED_OUTBOX_STATES = [OutboxState.CANCELLED, OutboxState.DELIVERED, OutboxState.FAILED]


class PostbackOutbox(models.Model):
    """One affiliate postback to deliver for one conversion event (conversion x postback x the
    status it reports). Written in the transaction that changes the conversion, so it survives
    a Redis or worker crash; a beat job claims due rows and delivers them."""

    conversion = models.ForeignKey(
        Conversion,
        on_delete=models.CASCADE,
        related_name="outbox",
        db_index=False,  # outbox_one_per_event leads with it
    )
    postback = models.ForeignKey(
        "partners.AffiliatePostback", on_delete=models.CASCADE, related_name="outbox"
    )
    conversion_status = models.CharField(max_length=10, choices=ConversionStatus.choices)
    # 0: the event as the conversion wrote it (the automatic path: one row, at most one success).
    # n > 0: the n-th resend staff or the affiliate asked for after the event was delivered, a new
    # event with its own webhook-id, so it may succeed again.
    resend_number = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        "accounts.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who asked for this resend (empty for the automatic event).",
        db_index=False,  # outbox_requested_by: the automatic rows (nearly all) are not indexed
    )
    state = models.CharField(
        max_length=10, choices=OutboxState.choices, default=OutboxState.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A worker's claim sets it, its result clears it: while it runs, the call may be out, and a
    # resend makes the row due when it ends rather than now (no second call beside the first).
    leased_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "postback outbox"
        constraints = [
            models.UniqueConstraint(
                fields=["conversion", "postback", "conversion_status", "resend_number"],
                name="outbox_one_per_event",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="outbox_due",
            ),
            # Retention: rows that are done with (delivered, given up, cancelled), oldest first.
            models.Index(
                fields=["updated_at"],
                condition=models.Q(state__in=SETTLED_OUTBOX_STATES),
                name="outbox_settled",
            ),
            models.Index(
                fields=["requested_by"],
                condition=models.Q(requested_by__isnull=False),
                name="outbox_requested_by",
            ),
        ]

    def __str__(self) -> str:
        return f"outbox {self.pk} ({self.state})"


class OutboundPostbackDelivery(models.Model):
    """One attempt to call an affiliate's postback URL for a conversion (or a test fire)."""

    conversion = models.ForeignKey(
        Conversion, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The log outlives the outbox: a pruned row leaves its attempts here (outbox empty).
    outbox = models.ForeignKey(
        PostbackOutbox,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="attempts_log",
    )
    is_test = models.BooleanField(default=False)
    http_method = models.CharField(max_length=4, default="GET")
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
            # One success per outbox row: however often one event is retried, claimed again after
            # a lease ran out or redelivered, it is delivered once. A resend someone asked for is
            # a row of its own (PostbackOutbox.resend_number) and may succeed again.
            models.UniqueConstraint(
                fields=["outbox"],
                condition=models.Q(succeeded=True),
                name="delivery_one_success_per_row",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({'ok' if self.succeeded else 'failed'})"


class ReconciliationRun(models.Model):
    """An advertiser's CSV compared with our conversions: the report, and whether the
    advertiser's statuses were applied."""

    advertiser = models.ForeignKey(
        "advertisers.Advertiser", on_delete=models.CASCADE, related_name="reconciliations"
    )
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    file_name = models.CharField(max_length=255, blank=True)
    date_from = models.DateField(null=True, blank=True)
    date_to = models.DateField(null=True, blank=True)
    summary = models.JSONField(default=dict)
    report = models.JSONField(default=list, help_text="One row per difference found.")
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"reconciliation {self.pk} ({self.file_name})"
