from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.advertisers.models import Advertiser
from apps.advertisers.services import advertiser_rotate_postback_token


@admin.register(Advertiser)
class AdvertiserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "name", "status", "postback_token_prefix", "require_token", "created_at"]
    list_filter = ["status", "require_token"]
    search_fields = ["name", "=id"]
    readonly_fields = ["postback_token_prefix"]
    actions = ["rotate_postback_token"]

    @admin.action(description="Generate a new postback token (shown once)", permissions=["change"])
    def rotate_postback_token(self, request: HttpRequest, queryset: QuerySet[Advertiser]) -> None:
        for advertiser in queryset:
            token = advertiser_rotate_postback_token(advertiser=advertiser)
            self.message_user(
                request,
                f"{advertiser.name}: new postback token {token} (copy it now).",
                messages.WARNING,
            )
