from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from apps.common.admin_scoping import AdvertiserScopedAdmin, advertiser_of
from apps.conversions.models import Conversion, InboundPostbackLog, OutboundPostbackDelivery

READ_ONLY_CONVERSION_FIELDS = [
    "click_id",
    "click_created_at",
    "click_ip",
    "click_country",
    "click_is_bot",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
    "source_id",
    "aff_click_id",
    "offer",
    "affiliate",
    "goal",
    "order_id",
    "currency",
    "sale_amount",
    "payout",
    "revenue",
    "ip",
    "country",
    "quality_score",
    "quality_reasons",
    "created_at",
    "adv1",
    "adv2",
    "adv3",
    "adv4",
    "adv5",
]


@admin.register(Conversion)
class ConversionAdmin(AdvertiserScopedAdmin):
    list_display = [
        "id",
        "created_at",
        "offer",
        "affiliate",
        "goal",
        "status",
        "payout",
        "revenue",
        "currency",
        "quality_score",
        "order_id",
    ]
    # Only offers that have conversions in the (scoped) queryset: an advertiser user never sees
    # another advertiser's offer names in the filter.
    list_filter = ["status", "currency", ("offer", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["=id", "=order_id", "=click_id"]
    date_hierarchy = "created_at"
    advertiser_path = "offer__advertiser_id"
    readonly_fields = [*READ_ONLY_CONVERSION_FIELDS, "affiliate_ref"]
    list_select_related = ["offer", "affiliate", "goal"]
    # Advertisers see what the API shows them: revenue but not the affiliate's payout, and the
    # affiliate by id, not by name.
    advertiser_hidden_fields = ("payout", "affiliate")

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        fields = [f for f in super().get_fields(request, obj) if f != "affiliate_ref"]
        if advertiser_of(request) is not None:
            fields.insert(fields.index("offer") + 1 if "offer" in fields else 0, "affiliate_ref")
        return fields

    def get_list_display(self, request: HttpRequest) -> Any:
        columns = list(super().get_list_display(request))
        if advertiser_of(request) is not None:
            columns.insert(columns.index("offer") + 1, "affiliate_ref")
        return columns

    @admin.display(description="affiliate id", ordering="affiliate_id")
    def affiliate_ref(self, conversion: Conversion) -> int:
        return conversion.affiliate_id

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # conversions come from postbacks


@admin.register(InboundPostbackLog)
class InboundPostbackLogAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "id",
        "created_at",
        "result",
        "reason",
        "http_status",
        "click_id",
        "order_id",
        "advertiser",
        "ip",
    ]
    list_filter = ["result", "reason", "advertiser"]
    search_fields = ["=click_id", "=order_id", "=conversion__id"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(OutboundPostbackDelivery)
class OutboundPostbackDeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "id",
        "created_at",
        "conversion",
        "postback",
        "attempt",
        "http_status",
        "succeeded",
        "latency_ms",
        "error",
    ]
    list_filter = ["succeeded"]
    search_fields = ["=conversion__id", "url"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
