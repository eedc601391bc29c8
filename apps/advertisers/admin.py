from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.advertisers.models import Advertiser
from apps.advertisers.services import (
    advertiser_rotate_postback_token,
    advertiser_rotate_signing_secret,
)


@admin.register(Advertiser)
class AdvertiserAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Network staff only (advertiser users have no permission on advertisers): the postback
    token and the HMAC signing secret are (re)issued here and shown once."""

    list_display = [
        "id",
        "name",
        "status",
        "postback_token_prefix",
        "require_token",
        "signing_secret_prefix",
        "require_signature",
        "created_at",
    ]
    list_filter = ["status", "require_token", "require_signature"]
    search_fields = ["name", "=id"]
    readonly_fields = ["postback_token_prefix", "signing_secret_prefix"]
    actions = ["rotate_postback_token", "rotate_signing_secret"]

    @admin.action(description="Generate a new postback token (shown once)", permissions=["change"])
    def rotate_postback_token(self, request: HttpRequest, queryset: QuerySet[Advertiser]) -> None:
        for advertiser in queryset:
            token = advertiser_rotate_postback_token(advertiser=advertiser)
            self.message_user(
                request,
                f"{advertiser.name}: new postback token {token} (copy it now).",
                messages.WARNING,
            )

    @admin.action(description="Rotate signing secret (shown once)", permissions=["change"])
    def rotate_signing_secret(self, request: HttpRequest, queryset: QuerySet[Advertiser]) -> None:
        for advertiser in queryset:
            secret = advertiser_rotate_signing_secret(advertiser=advertiser)
            self.message_user(
                request,
                f"{advertiser.name}: new signing secret {secret} (copy it now: it is not shown "
                "again, and the old one no longer works).",
                messages.WARNING,
            )
