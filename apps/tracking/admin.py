from __future__ import annotations

from django.contrib import admin

from apps.tracking.models import Click


@admin.register(Click)
class ClickAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "click_id",
        "created_at",
        "offer",
        "affiliate",
        "ip",
        "country",
        "is_unique",
        "is_bot",
        "sub1",
    ]
    list_filter = ["is_bot", "is_unique", "country"]
    search_fields = ["=click_id", "=ip", "sub1"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
