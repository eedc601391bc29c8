from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.advertisers.models import Advertiser
from apps.advertisers.services import (
    advertiser_rotate_postback_token,
    advertiser_signing_secret_rotate,
)
from apps.common.admin_scoping import AdvertiserScopedAdmin, advertiser_of


@admin.register(Advertiser)
class AdvertiserAdmin(AdvertiserScopedAdmin):
    """Network staff run advertisers here; the postback token and the HMAC signing secret are
    (re)issued here and shown once. An advertiser user sees its own advertiser only, read-only,
    and may do one thing: rotate its own signing secret."""

    advertiser_path = "id"
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
    readonly_fields = [
        "postback_token_prefix",
        "signing_secret_prefix",
        "signing_secret_rotated_at",
        "previous_signing_secret_prefix",
        "previous_signing_secret_expires_at",
    ]
    actions = ["rotate_postback_token", "rotate_signing_secret"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return advertiser_of(request) is not None or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if advertiser_of(request) is not None:
            # Its own advertiser (the queryset holds nothing else), without a model permission.
            return self._owns(request, obj)
        return super().has_view_permission(request, obj)

    def has_rotate_secret_permission(self, request: HttpRequest) -> bool:
        # Staff who may change advertisers, or an advertiser user (for its own: the action only
        # ever gets the scoped queryset).
        return advertiser_of(request) is not None or self.has_change_permission(request)

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        if advertiser_of(request) is not None:
            return {name: a for name, a in actions.items() if name == "rotate_signing_secret"}
        return actions

    @admin.action(description="Generate a new postback token (shown once)", permissions=["change"])
    def rotate_postback_token(self, request: HttpRequest, queryset: QuerySet[Advertiser]) -> None:
        for advertiser in queryset:
            token = advertiser_rotate_postback_token(advertiser=advertiser)
            self.message_user(
                request,
                f"{advertiser.name}: new postback token {token} (copy it now).",
                messages.WARNING,
            )

    @admin.action(description="Rotate signing secret (shown once)", permissions=["rotate_secret"])
    def rotate_signing_secret(self, request: HttpRequest, queryset: QuerySet[Advertiser]) -> None:
        for advertiser in queryset:
            rotated = advertiser_signing_secret_rotate(
                advertiser_id=advertiser.pk, now=timezone.now()
            )
            until = rotated.previous_valid_until
            old = (
                f"the previous one keeps working until {until:%Y-%m-%d %H:%M} UTC"
                if until is not None
                else "any previous one no longer works"
            )
            self.message_user(
                request,
                f"{advertiser.name}: new signing secret {rotated.secret} (copy it now: it is not "
                f"shown again; {old}).",
                messages.WARNING,
            )
