from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.common.money import AMOUNT_FIELD_KWARGS, Currency


class EntryKind(models.TextChoices):
    COMMISSION = "commission", "Commission"
    REVERSAL = "reversal", "Reversal"
    ADJUSTMENT = "adjustment", "Manual adjustment"
    PAYOUT = "payout", "Payout"


class LedgerEntry(models.Model):
    """An append-only line in an affiliate's ledger. The database refuses UPDATE and DELETE
    (trigger in migration 0003); a correction is a new entry.

    `cycle` counts approvals of one conversion: approve -> commission 0, reject -> reversal 0,
    approve again -> commission 1, ... so (conversion, kind, cycle) is unique and a re-approved
    conversion is credited again. `available_at` is when the entry can be paid out (the offer's
    hold); whether an entry is pending, available or paid is derived from time and statements,
    never stored on the entry.
    """

    affiliate = models.ForeignKey(
        "partners.Affiliate", on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
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
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"


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
