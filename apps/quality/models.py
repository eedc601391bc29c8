"""Lead-quality configuration and records: profiles (weights and bands), per-goal timings,
hashed lead fingerprints, and notes left by re-scoring."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.conversions.models import Conversion
from apps.offers.models import Goal


class QualityAction(models.TextChoices):
    APPROVE = "approve", "Approve"
    HOLD = "hold", "Hold as pending"
    REJECT = "reject", "Reject"


class QualityProfile(models.Model):
    """Weights and score bands. The row without an offer is the network default; an offer's own
    row overrides it. Weights not named here keep the built-in defaults (apps.quality.signals)."""

    offer = models.OneToOneField(
        "offers.Offer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="quality_profile",
        help_text="Empty: the network default.",
    )
    weights = models.JSONField(
        default=dict,
        blank=True,
        help_text='Reason code -> points taken off 100, e.g. {"datacenter_ip": 70}.',
    )
    hold_below = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text="Scores below this are held as pending. Empty: the offer's quality threshold.",
    )
    reject_below = models.PositiveSmallIntegerField(
        default=20,
        validators=[MaxValueValidator(100)],
        help_text="Scores below this are rejected (unless automatic rejection is off).",
    )
    auto_reject = models.BooleanField(
        default=True, help_text="Off: conversions in the reject band are only held for review."
    )
    revision = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["offer"],
                condition=models.Q(offer__isnull=True),
                name="quality_one_network_default",
            ),
        ]

    def __str__(self) -> str:
        return f"quality profile ({self.offer or 'network default'})"


class GoalQualitySetting(models.Model):
    """How long a genuine shopper takes, per goal. A goal without a row uses its offer's
    min_seconds_to_convert and the network's plausible maximum."""

    goal = models.OneToOneField(
        "offers.Goal", on_delete=models.CASCADE, related_name="quality_setting"
    )
    min_seconds = models.FloatField(
        default=15.0,
        validators=[MinValueValidator(0)],
        help_text="Sooner than this after the click is too fast (default 15 s, for leads).",
    )
    max_seconds = models.FloatField(
        default=86_400.0,
        validators=[MinValueValidator(0)],
        help_text="Later than this after the click is implausibly long.",
    )

    def __str__(self) -> str:
        return f"timings for goal {self.goal_id}"


class LeadFingerprint(models.Model):
    """What later signals compare a conversion against: hashes only, never raw email or phone."""

    conversion = models.OneToOneField(
        Conversion, on_delete=models.CASCADE, related_name="quality_fingerprint"
    )
    offer_id = models.BigIntegerField()
    affiliate_id = models.BigIntegerField()
    sub1 = models.CharField(max_length=255, blank=True)
    ua_ip_hash = models.CharField(max_length=64, blank=True)
    email_hash = models.CharField(max_length=64, blank=True)
    phone_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["affiliate_id", "ua_ip_hash", "created_at"], name="lfp_ua_ip"),
            # Most conversions carry no email or phone: their empty hashes are not indexed (two
            # index writes fewer per conversion), and history_read's `<> ''` lets the generic plan
            # of its prepared statement use these (a plain index looked like a scan of every
            # empty hash to the planner, so it chose a sequential scan).
            models.Index(
                fields=["offer_id", "email_hash"],
                name="lfp_email_set",
                condition=~models.Q(email_hash=""),
            ),
            models.Index(
                fields=["offer_id", "phone_hash"],
                name="lfp_phone_set",
                condition=~models.Q(phone_hash=""),
            ),
        ]

    def __str__(self) -> str:
        return f"fingerprint of conversion {self.conversion_id}"


class QualityNote(models.Model):
    """A re-score that would have changed a conversion we do not move (approved, paid, reversed)."""

    conversion = models.ForeignKey(
        Conversion, on_delete=models.CASCADE, related_name="quality_notes"
    )
    created_at = models.DateTimeField()
    old_score = models.PositiveSmallIntegerField()
    new_score = models.PositiveSmallIntegerField()
    reasons = models.JSONField(default=list)
    evidence = models.JSONField(default=dict)
    status = models.CharField(max_length=10)
    action = models.CharField(max_length=10, choices=QualityAction.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    text = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"note on conversion {self.conversion_id}: {self.old_score} -> {self.new_score}"


class GoalTiming(Goal):
    """Goals as the admin's place to set their quality timings (an inline of GoalQualitySetting)."""

    class Meta:
        proxy = True
        verbose_name = "goal timing"


class ReviewConversion(Conversion):
    """The admin's review queue: pending conversions by score."""

    class Meta:
        proxy = True
        verbose_name = "conversion to review"
        verbose_name_plural = "review queue"
