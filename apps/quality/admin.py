"""Quality in the admin (network staff only): scoring profiles, goal timings, and the review queue
(pending conversions first, lowest score first, with their evidence; bulk approve / reject)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from apps.offers.models import ConversionStatus
from apps.quality import services
from apps.quality.models import (
    GoalQualitySetting,
    GoalTiming,
    QualityNote,
    QualityProfile,
    ReviewConversion,
)


class StaffOnly:
    """Quality configuration and review are the network's, not an advertiser's."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)


@admin.register(QualityProfile)
class QualityProfileAdmin(StaffOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["__str__", "hold_below", "reject_below", "auto_reject", "revision"]
    readonly_fields = ["revision", "updated_at"]
    raw_id_fields = ["offer"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        services.quality_profile_save(profile=obj)


class GoalQualitySettingInline(admin.StackedInline):  # type: ignore[type-arg]
    model = GoalQualitySetting
    extra = 1
    max_num = 1


@admin.register(GoalTiming)
class GoalTimingAdmin(StaffOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["__str__", "offer", "name", "min_seconds", "max_seconds"]
    fields = ["offer", "code", "name"]
    readonly_fields = ["offer", "code", "name"]
    inlines = [GoalQualitySettingInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="min seconds")
    def min_seconds(self, goal: GoalTiming) -> str:
        setting = GoalQualitySetting.objects.filter(goal_id=goal.pk).first()
        return (
            f"{setting.min_seconds:g}" if setting else f"offer: {goal.offer.min_seconds_to_convert}"
        )

    @admin.display(description="max seconds")
    def max_seconds(self, goal: GoalTiming) -> str:
        setting = GoalQualitySetting.objects.filter(goal_id=goal.pk).first()
        return f"{setting.max_seconds:g}" if setting else "network default"


NOTE_FIELDS = ("created_at", "old_score", "new_score", "status", "action", "author", "text")


class QualityNoteInline(admin.TabularInline):  # type: ignore[type-arg]
    model = QualityNote
    fk_name = "conversion"
    extra = 0
    can_delete = False
    fields = NOTE_FIELDS
    readonly_fields = NOTE_FIELDS

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


REVIEW_FIELDS = (
    "id",
    "status",
    "offer",
    "affiliate",
    "goal",
    "sub1",
    "click_ip",
    "ip",
    "click_country",
    "country",
    "quality_score",
    "quality_reasons",
    "evidence",
    "quality_rule_version",
    "created_at",
    "click_created_at",
)


@admin.register(ReviewConversion)
class ReviewQueueAdmin(StaffOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """Pending conversions first, lowest score first; the status filter narrows to pending."""

    list_display = [
        "id",
        "status",
        "quality_score",
        "reasons",
        "evidence",
        "created_at",
        "offer",
        "affiliate_id",
        "sub1",
    ]
    list_filter = ["status", ("offer", admin.RelatedOnlyFieldListFilter)]
    actions = ["approve_selected", "reject_selected"]
    list_per_page = 100
    fields = REVIEW_FIELDS
    readonly_fields = REVIEW_FIELDS
    inlines = [QualityNoteInline]

    def get_ordering(self, request: HttpRequest) -> list[Any]:
        pending_first = Case(
            When(status=ConversionStatus.PENDING, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return [pending_first.asc(), "quality_score", "id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="reasons")
    def reasons(self, conversion: ReviewConversion) -> str:
        return ", ".join(str(r) for r in conversion.quality_reasons)

    @admin.display(description="evidence")
    def evidence(self, conversion: ReviewConversion) -> str:
        return format_html("<code>{}</code>", json.dumps(conversion.quality_evidence)[:1000])

    def _decide(self, request: HttpRequest, queryset: QuerySet[Any], status: str) -> None:
        moved = services.review_decide(
            conversion_ids=list(queryset.values_list("pk", flat=True)),
            status=ConversionStatus(status),
            user_id=request.user.pk,
            now=timezone.now(),
        )
        self.message_user(request, f"{moved} pending conversion(s) {status}.", messages.SUCCESS)

    @admin.action(description="Approve selected pending conversions")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._decide(request, queryset, ConversionStatus.APPROVED)

    @admin.action(description="Reject selected pending conversions")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._decide(request, queryset, ConversionStatus.REJECTED)
