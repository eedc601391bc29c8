from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.advertisers.models import Advertiser
from apps.common.admin_scoping import AdvertiserScopedAdmin, advertiser_of
from apps.common.text import digits_int
from apps.conversions.models import (
    Conversion,
    ConversionStatusChange,
    InboundPostbackLog,
    OutboundPostbackDelivery,
    StatusChangeSource,
)
from apps.conversions.status import (
    StatusChangeRefused,
    conversion_scrub,
    conversions_status_change,
)
from apps.offers.models import ConversionStatus
from apps.partners.admin import deliveries_resend

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


class StatusChangeInline(admin.TabularInline):  # type: ignore[type-arg]
    """The conversion's status history: who moved it, when and why. Read-only, append-only."""

    model = ConversionStatusChange
    extra = 0
    can_delete = False
    fields = ("created_at", "old_status", "new_status", "source", "user", "reason")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def _move_selected(
    admin_class: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Conversion],
    status: ConversionStatus,
) -> None:
    moved = conversions_status_change(
        conversion_ids=queryset.values_list("pk", flat=True),
        new_status=status,
        source=StatusChangeSource.ADMIN,
        now=timezone.now(),
        user_id=request.user.pk,
        reason="changed in the admin",
    )
    skipped = queryset.count() - moved
    admin_class.message_user(
        request,
        f"{moved} conversion(s) now {status}; {skipped} left as they were (not a move their "
        "status allows).",
        messages.SUCCESS if not skipped else messages.WARNING,
    )


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
    # Status changes only through the actions below (allowed moves, recorded with who and why).
    readonly_fields = [
        *READ_ONLY_CONVERSION_FIELDS,
        "status",
        "status_changed_at",
        "method",
        "coupon_code",
        "affiliate_ref",
    ]
    inlines = [StatusChangeInline]
    actions = ["approve_selected", "reject_selected", "reverse_selected", "scrub_selected"]
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

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)
        # Staff move conversions freely (within the allowed moves); advertiser users only scrub
        # their own, within their scrub window.
        keep = (
            {"scrub_selected"}
            if advertiser_of(request) is not None
            else {
                "approve_selected",
                "reject_selected",
                "reverse_selected",
            }
        )
        return {name: action for name, action in actions.items() if name in keep}

    @admin.action(description="Approve selected conversions", permissions=["change"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Conversion]) -> None:
        _move_selected(self, request, queryset, ConversionStatus.APPROVED)

    @admin.action(description="Reject selected pending conversions", permissions=["change"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Conversion]) -> None:
        _move_selected(self, request, queryset, ConversionStatus.REJECTED)

    @admin.action(description="Reverse selected approved conversions", permissions=["change"])
    def reverse_selected(self, request: HttpRequest, queryset: QuerySet[Conversion]) -> None:
        _move_selected(self, request, queryset, ConversionStatus.REVERSED)

    # No "change" permission needed: advertiser users view conversions; scrubbing is the one
    # move they may make, and conversion_scrub checks ownership and the window.
    @admin.action(description="Scrub (reject) selected conversions")
    def scrub_selected(self, request: HttpRequest, queryset: QuerySet[Conversion]) -> None:
        advertiser_id = advertiser_of(request)
        if advertiser_id is None:
            return
        scrubbed, refused = 0, 0
        for conversion_id in queryset.values_list("pk", flat=True):
            try:
                _, changed = conversion_scrub(
                    conversion_id=conversion_id,
                    advertiser_id=advertiser_id,
                    now=timezone.now(),
                    user_id=request.user.pk,
                    reason="scrubbed by the advertiser in the admin",
                )
            except StatusChangeRefused:
                refused += 1
            else:
                scrubbed += changed
        self.message_user(
            request,
            f"{scrubbed} conversion(s) scrubbed; {refused} outside the scrub window.",
            messages.SUCCESS if not refused else messages.WARNING,
        )


@admin.register(InboundPostbackLog)
class InboundPostbackLogAdmin(AdvertiserScopedAdmin):
    """The postback debugger: every /postback and pixel call, the request as it came (secrets
    masked) and the decision with its reason. Read-only. An advertiser user sees its own
    advertiser's calls (those whose click, or conversion, is on one of its offers)."""

    # What each refusal means, for the person asking "why didn't my postback count?".
    REASON_HELP: dict[str, str] = {
        "missing_click_id": "No click id was sent (for a pixel: the browser sent no click cookie).",
        "unknown_click": "No click has this id: mistyped, not from us, or not a click id at all.",
        "bad_token": "The postback token is missing or wrong for the click's advertiser.",
        "pixel_not_enabled": "The offer does not take this kind of pixel (its pixel methods).",
        "token_exposed": "A pixel carried this advertiser's secret postback token, which is "
        "public in a page: rotate the token and take it out of the pixel (the row is the "
        "token's advertiser's, whatever offer the pixel named).",
        "missing_offer_id": "The pixel did not name its offer (offer_id=…).",
        "unknown_offer": "The pixel named an offer we do not have.",
        "click_of_another_offer": "The browser's latest click is on another offer than the "
        "pixel's (its click id is not shown here).",
        "ip_not_allowed": "The sender's IP is not in the advertiser's IP allowlist (a pixel: "
        "an advertiser with an IP allowlist gets no pixels).",
        "signature_required": "The advertiser requires an HMAC signature and none was sent (a "
        "pixel: an advertiser that requires signatures gets no pixels).",
        "signing_not_configured": "A signature was sent but the advertiser has no signing secret.",
        "bad_signature_timestamp": "X-OpenCPA-Timestamp is missing or not unix seconds.",
        "signature_expired": "X-OpenCPA-Timestamp is too far from our clock (5 min by default).",
        "bad_signature": "The HMAC signature does not match the request as received.",
        "outside_attribution_window": "The click is older than the offer's attribution window.",
        "unknown_goal": "The goal is not one of the offer's goals (or there is no default goal).",
        "invalid_amount": "The amount is not a plain decimal number between 0 and 1,000,000,000.",
        "invalid_status": "The status is not one we know (approved, pending, rejected, 1, 2, 3…).",
        "invalid_order_id": "The order id is longer than 255 characters or holds a NUL.",
        "amount_required": "The goal pays a percentage of the sale and no amount was sent.",
        "order_conflict": "This order id was already reported with another amount.",
        "goal_already_converted": "This goal converts once per click and already has.",
        "required_goal_missing": "The goal needs an earlier goal on the same click first.",
        "malformed_request": "The request could not be read (bad JSON, too many parameters…).",
        "body_too_large": "The request body is over the size limit.",
        "unknown_coupon": "No active coupon code matches.",
        "ambiguous_coupon": "The coupon code is on several offers: send offer_id too.",
        "order_id_required": "A coupon conversion needs an order id.",
    }

    advertiser_path = "advertiser_id"
    list_display = [
        "id",
        "created_at",
        "result",
        "reason",
        "http_status",
        "method",
        "path",
        "click_id",
        "order_id",
        "advertiser",
        "conversion_link",
        "ip",
    ]
    list_filter = [
        "result",
        "reason",
        ("advertiser", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    # Click, order or conversion id (exactly, as sent: indexed) or part of an advertiser's name;
    # see get_search_results.
    search_fields = ["click_id"]
    search_help_text = "A click id, order id or conversion id (exactly), or an advertiser's name."
    date_hierarchy = "created_at"
    list_select_related = ["advertiser"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Ids match exactly, case included (a click id is case-sensitive), so the lookups use
        the log's indexes: Django's own `=` search is a case-insensitive scan of every row."""
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(click_id=term) | Q(order_id=term)
        conversion_id = digits_int(term)
        if conversion_id is not None:
            match |= Q(conversion_id=conversion_id)
        named = list(
            Advertiser.objects.filter(name__icontains=term).values_list("pk", flat=True)[:100]
        )
        if named:
            match |= Q(advertiser_id__in=named)
        return queryset.filter(match), False

    fieldsets = [
        ("Request", {"fields": ["created_at", "method", "path", "ip", "params_shown"]}),
        ("Headers and body", {"fields": ["headers_shown", "body_shown"]}),
        (
            "Decision",
            {
                "fields": [
                    "result",
                    "reason",
                    "reason_help",
                    "http_status",
                    "advertiser",
                    "click_id",
                    "order_id",
                    "conversion_link",
                ]
            },
        ),
    ]
    readonly_fields = [
        "created_at",
        "method",
        "path",
        "ip",
        "params_shown",
        "headers_shown",
        "body_shown",
        "result",
        "reason",
        "reason_help",
        "http_status",
        "advertiser",
        "click_id",
        "order_id",
        "conversion_link",
    ]

    @admin.display(description="parameters")
    def params_shown(self, log: InboundPostbackLog) -> str:
        return format_html("<pre>{}</pre>", json.dumps(log.params, indent=2, ensure_ascii=False))

    @admin.display(description="headers")
    def headers_shown(self, log: InboundPostbackLog) -> str:
        if not log.headers:
            return "-"
        lines = "\n".join(f"{name}: {value}" for name, value in log.headers.items())
        return format_html("<pre>{}</pre>", lines)

    @admin.display(description="body")
    def body_shown(self, log: InboundPostbackLog) -> str:
        return format_html("<pre>{}</pre>", log.body) if log.body else "-"

    @admin.display(description="what it means")
    def reason_help(self, log: InboundPostbackLog) -> str:
        if not log.reason:
            return "Recorded." if log.result == "accepted" else "Already recorded: a retry."
        return self.REASON_HELP.get(log.reason, log.reason.replace("_", " "))

    @admin.display(description="conversion", ordering="conversion_id")
    def conversion_link(self, log: InboundPostbackLog) -> str:
        if log.conversion_id is None:
            return "-"
        url = reverse("admin:conversions_conversion_change", args=[log.conversion_id])
        return format_html('<a href="{}">#{}</a>', url, log.conversion_id)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if advertiser_of(request) is not None:
            # An advertiser user may read its own calls (the queryset is cut to them), without
            # a model permission of its own: the debugger is part of every advertiser's admin.
            return self._owns(request, obj)
        return super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # the log is evidence; the retention job prunes it


@admin.register(OutboundPostbackDelivery)
class OutboundPostbackDeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The delivery log: every call made to an affiliate's postback URL. Read-only, network staff
    only (advertiser users have no permission on it); the resend action acts on the outbox."""

    list_display = [
        "id",
        "created_at",
        "conversion",
        "postback",
        "outbox",
        "attempt",
        "http_status",
        "succeeded",
        "is_test",
        "latency_ms",
        "error",
    ]
    list_filter = ["succeeded", "is_test"]
    search_fields = ["=conversion__id", "url"]
    list_select_related = ["conversion", "postback", "outbox"]
    actions = [deliveries_resend]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Resending changes the outbox: it takes the outbox's change permission, not the log's
        view permission."""
        return request.user.has_perm("conversions.change_postbackoutbox")


from apps.conversions import reconciliation_admin  # noqa: E402, F401 - registers its admin
