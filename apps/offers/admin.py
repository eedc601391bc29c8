from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from apps.common.admin_scoping import AdvertiserScopedAdmin, advertiser_of
from apps.offers import selectors, services
from apps.offers.models import (
    AccessStatus,
    CouponCode,
    CustomPayout,
    Goal,
    Offer,
    OfferAccess,
    OfferCap,
    PayoutTier,
)

_PARENT_OFFER = "_offer_admin_parent_offer"


class _SameOfferGoalMixin:
    """Goal choices in an offer's inline are that offer's goals only."""

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        setattr(request, _PARENT_OFFER, obj)  # for formfield_for_foreignkey below
        return super().get_formset(request, obj, **kwargs)  # type: ignore[misc]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in ("goal", "requires_goal"):
            parent = getattr(request, _PARENT_OFFER, None)
            kwargs["queryset"] = (
                Goal.objects.filter(offer=parent) if parent is not None else Goal.objects.none()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class GoalInline(_SameOfferGoalMixin, admin.StackedInline):  # type: ignore[type-arg]
    model = Goal
    extra = 0
    fields = [
        ("code", "name", "default_status", "is_default"),
        ("payout_type", "payout", "payout_percent"),
        ("revenue_type", "revenue", "revenue_percent"),
        ("is_repeatable", "requires_goal"),
    ]


class CustomPayoutInline(_SameOfferGoalMixin, admin.TabularInline):  # type: ignore[type-arg]
    """An affiliate's own payout on this offer (staff only: advertisers never see payouts of
    individual affiliates)."""

    model = CustomPayout
    extra = 0
    raw_id_fields = ["affiliate"]
    fields = ["affiliate", "goal", "country", "payout_type", "payout", "payout_percent"]


class PayoutTierInline(_SameOfferGoalMixin, admin.TabularInline):  # type: ignore[type-arg]
    """Volume tiers (staff only, like custom payouts): from the affiliate's Nth approved
    conversion in a calendar month (the offer's time zone), the tier's payout when it is higher.
    A tier that has been reached cannot be deleted (the ledger points at it)."""

    model = PayoutTier
    extra = 0
    raw_id_fields = ["affiliate"]
    fields = [
        "name",
        "threshold",
        "goal",
        "affiliate",
        "payout_type",
        "payout",
        "payout_percent",
    ]


class CouponCodeInline(admin.TabularInline):  # type: ignore[type-arg]
    model = CouponCode
    extra = 0
    raw_id_fields = ["affiliate"]
    fields = ["code", "affiliate", "is_active", "created_at"]
    readonly_fields = ["created_at"]


class OfferCapInline(_SameOfferGoalMixin, admin.TabularInline):  # type: ignore[type-arg]
    """Caps of the offer. A cap's goal is one of this offer's goals. Advertiser users set caps for
    all affiliates together and see a per-affiliate cap's affiliate by id only (no names)."""

    model = OfferCap
    extra = 0
    raw_id_fields = ["affiliate"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if advertiser_of(request) is not None:
            return ["metric", "period", "limit", "goal", "affiliate_ref"]
        return ["metric", "period", "limit", "goal", "affiliate"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["affiliate_ref"] if advertiser_of(request) is not None else []

    @admin.display(description="affiliate id")
    def affiliate_ref(self, cap: OfferCap) -> str:
        return str(cap.affiliate_id) if cap.affiliate_id else "all"


@admin.register(Offer)
class OfferAdmin(AdvertiserScopedAdmin):
    list_display = ["id", "name", "advertiser", "status", "visibility", "currency", "created_at"]
    list_filter = ["status", "visibility", "currency", "advertiser"]
    search_fields = ["name", "=id"]
    inlines = [GoalInline, OfferCapInline, CustomPayoutInline, PayoutTierInline, CouponCodeInline]
    actions = ["pause_offers"]
    scoped_foreign_keys = {"advertiser": "pk", "fallback_offer": "advertiser_id"}
    advertiser_hidden_fields = ("advertiser",)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        advertiser_id = advertiser_of(request)
        if advertiser_id is None:
            return form

        class AdvertiserOfferForm(form):  # type: ignore[misc,valid-type]
            """The advertiser is set before validation, so Offer.clean() sees the real owner."""

            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, **kw)
                self.instance.advertiser_id = advertiser_id

        return AdvertiserOfferForm

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        if advertiser_of(request) is not None:
            # Per-affiliate payouts, volume tiers and coupon codes are the network's business
            # with its affiliates, not the advertiser's.
            return [GoalInline, OfferCapInline]
        return super().get_inlines(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*super().get_readonly_fields(request, obj), "tracking_code"]

    @admin.display(description="Conversion tracking code")
    def tracking_code(self, offer: Offer) -> str:
        """The postback URL and the pixels to give the advertiser (saved settings: tick a pixel
        and save to see its code)."""
        if offer.pk is None:
            return "Save the offer to see its postback URL and pixels."
        return format_html_join(
            "",
            "<p><strong>{}</strong></p><pre style='white-space:pre-wrap'>{}</pre>",
            selectors.offer_tracking_code(offer=offer),
        )

    def save_model(self, request: HttpRequest, obj: Offer, form: Any, change: bool) -> None:
        advertiser_id = advertiser_of(request)
        if advertiser_id is not None:
            obj.advertiser_id = advertiser_id  # an advertiser can only create its own offers
        super().save_model(request, obj, form, change)

    @admin.action(description="Pause selected offers", permissions=["change"])
    def pause_offers(self, request: HttpRequest, queryset: QuerySet[Offer]) -> None:
        count = services.offer_pause(offer_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Paused {count} offer(s).", messages.SUCCESS)


@admin.register(Goal)
class GoalAdmin(AdvertiserScopedAdmin):
    list_display = ["id", "offer", "code", "name", "payout_type", "payout", "revenue", "is_default"]
    list_filter = ["payout_type", "default_status"]
    search_fields = ["code", "name", "offer__name"]
    advertiser_path = "offer__advertiser_id"
    scoped_foreign_keys = {"offer": "advertiser_id"}


@admin.register(OfferAccess)
class OfferAccessAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "offer", "affiliate", "status", "updated_at"]
    list_filter = ["status"]
    search_fields = ["offer__name", "affiliate__name", "=offer__id", "=affiliate__id"]
    actions = ["approve", "reject"]
    raw_id_fields = ["offer", "affiliate"]

    @admin.action(description="Approve selected access requests", permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[OfferAccess]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = services.offer_access_set(access_ids=ids, status=AccessStatus.APPROVED)
        self.message_user(request, f"Approved {count} request(s).", messages.SUCCESS)

    @admin.action(description="Reject selected access requests", permissions=["change"])
    def reject(self, request: HttpRequest, queryset: QuerySet[OfferAccess]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = services.offer_access_set(access_ids=ids, status=AccessStatus.REJECTED)
        self.message_user(request, f"Rejected {count} request(s).", messages.SUCCESS)
