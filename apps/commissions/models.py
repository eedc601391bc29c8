from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from apps.common.money import AMOUNT_FIELD_KWARGS, Currency


class EntryKind(models.TextChoices):
    COMMISSION = "commission", "Commission"
    REVERSAL = "reversal", "Reversal"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    PAYOUT = "payout", "Payout"
    REFERRAL = "referral", "Referral commission"
    REFERRAL_REVERSAL = "referral_reversal", "Referral reversal"


class LedgerEntry(models.Model):
    """An append-only line in an affiliate's ledger. The database refuses UPDATE and DELETE
    (trigger in migration 0003); a correction is a new entry.

    `cycle` counts approvals of one conversion: approve -> commission 0, reject -> reversal 0,
    approve again -> commission 1, ... so (conversion, kind, cycle) is unique and a re-approved
    conversion is credited again. `available_at` is when the entry can be paid out (the offer's
    hold); whether an entry is pending, available or paid is derived from time and statements,
    never stored on the entry.

    A referral entry credits the referrer `rate` percent of one commission (same conversion and
    cycle); a referral reversal takes it back when that commission is reversed.
    """

    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=20, choices=EntryKind.choices)
    amount = models.DecimalField(**AMOUNT_FIELD_KWARGS)
    currency = models.CharField(max_length=3, choices=Currency.choices)
    conversion = models.ForeignKey(
        "conversions.Conversion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="ledger_entries",
    )
    cycle = models.PositiveIntegerField(default=0)
    statement = models.ForeignKey(
        "commissions.Statement",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payout_entries",
        help_text="Payout entries: the statement they pay.",
    )
    memo = models.CharField(max_length=255, blank=True)
    tier_reached = models.ForeignKey(
        "commissions.TierReached",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="commissions",
        db_index=False,  # a partial index below: almost every entry has none
        help_text="Commissions paid at a volume tier's payout: the tier the affiliate had reached.",
    )
    rate = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Referral entries: the percent of the commission credited.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    available_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["conversion", "kind", "cycle"],
                condition=models.Q(conversion__isnull=False),
                name="ledger_one_entry_per_conversion_kind_cycle",
            ),
            models.UniqueConstraint(
                fields=["statement"],
                condition=models.Q(kind="payout"),
                name="ledger_one_payout_per_statement",
            ),
            models.CheckConstraint(
                condition=models.Q(statement__isnull=True) | models.Q(kind="payout"),
                name="ledger_statement_only_on_payouts",
            ),
        ]
        indexes = [
            models.Index(fields=["affiliate", "currency"], name="ledger_aff_currency"),
            models.Index(fields=["affiliate", "available_at"], name="ledger_aff_available"),
            models.Index(
                fields=["tier_reached"],
                condition=models.Q(tier_reached__isnull=False),
                name="ledger_tier_reached",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"


class TierReached(models.Model):
    """The moment an affiliate reached a volume tier on an offer in one calendar month (offer's
    time zone): the creation time of its Nth approved conversion there, as the accrual job first
    saw it. Append-only (a database trigger refuses UPDATE and DELETE), one per affiliate, tier
    and month; conversions of that month created at or after `reached_at` earn the tier."""

    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.PROTECT, related_name="tiers_reached"
    )
    offer = models.ForeignKey("offers.Offer", on_delete=models.PROTECT, related_name="+")
    tier = models.ForeignKey("offers.PayoutTier", on_delete=models.PROTECT, related_name="reached")
    month = models.DateField(help_text="First day of the month, in the offer's time zone.")
    reached_at = models.DateTimeField()
    conversion = models.ForeignKey(
        "conversions.Conversion",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The Nth approved conversion: the one that reached the tier.",
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-month", "affiliate_id", "reached_at"]
        verbose_name_plural = "tiers reached"
        constraints = [
            models.UniqueConstraint(
                fields=["affiliate", "tier", "month"], name="tier_reached_once_per_month"
            ),
        ]
        indexes = [
            models.Index(fields=["affiliate", "offer", "month"], name="tier_reached_lookup"),
        ]

    def __str__(self) -> str:
        return f"affiliate {self.affiliate_id} reached tier {self.tier_id} ({self.month:%Y-%m})"


class AccrualQueue(models.Model):
    """Conversions the accrual job has to look at: a database trigger on the conversions table
    adds one row whenever a conversion is recorded approved or its status, payout or over-cap
    flag changes, in the same transaction as the change. The job takes rows with
    `FOR UPDATE SKIP LOCKED` and deletes them in the transaction that writes their entries, so a
    crash leaves them queued. A conversion may be queued more than once; that is harmless."""

    id = models.BigAutoField(primary_key=True)
    conversion_id = models.BigIntegerField(db_index=True)
    queued_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"conversion {self.conversion_id} (queued {self.queued_at:%Y-%m-%d %H:%M:%S})"


class StatementStatus(models.TextChoices):
    ROLLED_OVER = "rolled_over", "Below minimum payout, rolled over"
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"
    PAID = "paid", "Paid"


class Statement(models.Model):
    """What an affiliate is owed for one closed billing period, in one currency.

    Its lines (StatementLine) are fixed when it is built and never change; only its status moves
    draft -> approved -> paid. A rolled-over statement has no lines: its entries wait for the next
    period.
    """

    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.PROTECT, related_name="statements"
    )
    currency = models.CharField(max_length=3, choices=Currency.choices)
    period_start = models.DateField()
    period_end = models.DateField(help_text="Last day of the period (inclusive).")
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="The affiliate's time zone the period's days were counted in.",
    )
    status = models.CharField(max_length=12, choices=StatementStatus.choices)
    total = models.DecimalField(**AMOUNT_FIELD_KWARGS)
    minimum_payout = models.DecimalField(**AMOUNT_FIELD_KWARGS)
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    paid_at = models.DateTimeField(null=True, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-period_start", "affiliate_id", "currency"]
        constraints = [
            models.UniqueConstraint(
                fields=["affiliate", "currency", "period_start"],
                name="statement_one_per_affiliate_currency_period",
            ),
        ]

    def __str__(self) -> str:
        return f"statement {self.pk}: {self.period_start}..{self.period_end} {self.currency}"


class StatementLine(models.Model):
    """One ledger entry on one statement; an entry is on at most one statement, ever."""

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="lines")
    entry = models.OneToOneField(
        LedgerEntry, on_delete=models.PROTECT, related_name="statement_line"
    )

    class Meta:
        ordering = ["entry_id"]

    def __str__(self) -> str:
        return f"statement {self.statement_id} entry {self.entry_id}"
