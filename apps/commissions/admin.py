from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from apps.commissions import services
from apps.commissions.exports import statement_csv, statement_invoice_html
from apps.commissions.models import LedgerEntry, Statement, StatementLine, TierReached


class LedgerEntryForm(forms.ModelForm):  # type: ignore[type-arg]
    cycle = forms.IntegerField(
        required=False,
        min_value=0,
        initial=0,
        help_text="Approval cycle of the conversion (0 unless it was re-approved).",
    )

    class Meta:
        model = LedgerEntry
        fields = ["affiliate", "kind", "amount", "currency", "conversion", "cycle", "memo"]

    def clean_cycle(self) -> int:
        return int(self.cleaned_data.get("cycle") or 0)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = LedgerEntryForm
    list_display = [
        "id",
        "created_at",
        "available_at",
        "affiliate",
        "kind",
        "amount",
        "currency",
        "conversion",
        "cycle",
        "tier_reached",
        "rate",
        "statement",
    ]
    list_filter = ["kind", "currency"]
    search_fields = ["=affiliate__id", "=conversion__id", "memo"]
    raw_id_fields = ["affiliate", "conversion"]
    # The add form is for manual adjustments: available now, no cycle, no statement.
    # `cycle` stays in the form so the unique (conversion, kind, cycle) rule is a form error.
    fields = ["affiliate", "kind", "amount", "currency", "conversion", "cycle", "memo"]

    # Append-only: entries can be added (manual adjustments) but never changed or deleted.
    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(TierReached)
class TierReachedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Which affiliate reached which volume tier in which month, and from when it pays. Written by
    the accrual job only; append-only in the database."""

    list_display = [
        "id",
        "month_label",
        "affiliate",
        "offer",
        "tier",
        "reached_at",
        "conversion",
        "commissions_at_tier",
    ]
    list_filter = ["month"]
    search_fields = ["=affiliate__id", "affiliate__name", "=offer__id", "offer__name", "tier__name"]
    list_select_related = ["affiliate", "offer", "tier"]
    readonly_fields = [
        "affiliate",
        "offer",
        "tier",
        "month",
        "reached_at",
        "conversion",
        "created_at",
        "commissions_at_tier",
    ]

    @admin.display(description="month", ordering="month")
    def month_label(self, row: TierReached) -> str:
        return f"{row.month:%Y-%m}"

    def get_queryset(self, request: HttpRequest) -> QuerySet[TierReached]:
        return super().get_queryset(request).annotate(n_commissions=Count("commissions"))

    @admin.display(description="commissions at this tier", ordering="n_commissions")
    def commissions_at_tier(self, row: TierReached) -> int:
        return int(getattr(row, "n_commissions", 0))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class StatementLineInline(admin.TabularInline):  # type: ignore[type-arg]
    model = StatementLine
    fields = ["entry", "kind", "amount", "available_at"]
    readonly_fields = ["entry", "kind", "amount", "available_at"]
    can_delete = False
    extra = 0

    @admin.display(description="kind")
    def kind(self, line: StatementLine) -> str:
        return line.entry.kind

    @admin.display(description="amount")
    def amount(self, line: StatementLine) -> str:
        return f"{line.entry.amount} {line.entry.currency}"

    @admin.display(description="available at")
    def available_at(self, line: StatementLine) -> str:
        return f"{line.entry.available_at:%Y-%m-%d %H:%M}"

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Statement)
class StatementAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "id",
        "affiliate",
        "period_start",
        "period_end",
        "timezone",
        "currency",
        "total",
        "status",
        "documents",
    ]
    list_filter = ["status", "currency"]
    search_fields = ["=affiliate__id", "affiliate__name"]
    readonly_fields = [
        "affiliate",
        "currency",
        "period_start",
        "period_end",
        "timezone",
        "status",
        "total",
        "minimum_payout",
        "created_at",
        "approved_at",
        "approved_by",
        "paid_at",
        "paid_by",
        "documents",
    ]
    inlines = [StatementLineInline]
    actions = ["approve", "mark_paid"]

    # Statements are built by the job and moved on by the actions; never edited by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="documents")
    def documents(self, statement: Statement) -> str:
        return format_html(
            '<a href="{}">CSV</a> · <a href="{}" target="_blank">invoice</a>',
            reverse("admin:commissions_statement_csv", args=[statement.pk]),
            reverse("admin:commissions_statement_invoice", args=[statement.pk]),
        )

    def _apply(self, request: HttpRequest, queryset: QuerySet[Statement], action: Any) -> None:
        done = skipped = 0
        for statement_id in queryset.order_by("id").values_list("id", flat=True):
            try:
                changed = action(statement_id=statement_id, user_id=request.user.pk)
            except services.CommissionError as error:
                self.message_user(request, error.detail, messages.ERROR)
                continue
            done += changed
            skipped += not changed
        self.message_user(request, f"{done} statement(s) updated, {skipped} already done.")

    @admin.action(description="Approve selected statements", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Statement]) -> None:
        self._apply(request, queryset, services.statement_approve)

    @admin.action(
        description="Mark selected statements paid (writes the payout entry)",
        permissions=["change"],
    )
    def mark_paid(self, request: HttpRequest, queryset: QuerySet[Statement]) -> None:
        self._apply(request, queryset, services.statement_mark_paid)

    def get_urls(self) -> list[URLPattern]:  # type: ignore[override]
        own = [
            path(
                "<int:statement_id>/csv/",
                self.admin_site.admin_view(self.csv_view),
                name="commissions_statement_csv",
            ),
            path(
                "<int:statement_id>/invoice/",
                self.admin_site.admin_view(self.invoice_view),
                name="commissions_statement_invoice",
            ),
        ]
        return own + super().get_urls()  # type: ignore[operator]

    def _statement(self, request: HttpRequest, statement_id: int) -> Statement:
        statement = get_object_or_404(
            Statement.objects.select_related("affiliate"), pk=statement_id
        )
        if not self.has_view_permission(request, statement):
            raise PermissionDenied
        return statement

    def csv_view(self, request: HttpRequest, statement_id: int) -> HttpResponse:
        statement = self._statement(request, statement_id)
        response = HttpResponse(statement_csv(statement=statement), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="statement-{statement.pk}.csv"'
        return response

    def invoice_view(self, request: HttpRequest, statement_id: int) -> HttpResponse:
        statement = self._statement(request, statement_id)
        return HttpResponse(statement_invoice_html(statement=statement))
