"""Affiliates, their postback URLs and signing keys, and the outbound postback outbox.

The outbox (a conversions model) is administered here, with the postbacks it belongs to: staff
look at it when an affiliate asks "why did my tracker not hear about this conversion?".
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.common.safe_http import URL_REFUSED, UnsafeUrl, url_check_on_save
from apps.conversions import outbound
from apps.conversions.models import OutboundPostbackDelivery, PostbackOutbox
from apps.partners.models import Affiliate, AffiliatePostback, AffiliateSigningKey
from apps.partners.services import signing_key_rotate

HTTP_METHODS = [("GET", "GET"), ("POST", "POST (JSON body)")]


class AffiliatePostbackForm(forms.ModelForm):  # type: ignore[type-arg]
    """The same rule as the API: only public http(s) URLs without credentials."""

    url = forms.URLField(max_length=2000, assume_scheme="https")
    # Optional in the form (GET when left out), so older forms and scripts keep working.
    http_method = forms.ChoiceField(choices=HTTP_METHODS, required=False, initial="GET")

    class Meta:
        model = AffiliatePostback
        fields = [
            "affiliate",
            "offer",
            "goal",
            "url",
            "http_method",
            "fire_on_pending",
            "fire_on_reversal",
            "sign",
            "is_active",
        ]

    def clean_url(self) -> Any:
        url = self.cleaned_data["url"]
        try:
            url_check_on_save(url)
        except UnsafeUrl as refused:
            raise forms.ValidationError(URL_REFUSED, code="url_not_allowed") from refused
        return url

    def clean_http_method(self) -> str:
        return self.cleaned_data.get("http_method") or "GET"


class AffiliatePostbackInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AffiliatePostback
    form = AffiliatePostbackForm
    extra = 0
    fields = [
        "url",
        "http_method",
        "offer",
        "goal",
        "fire_on_pending",
        "fire_on_reversal",
        "sign",
        "is_active",
        "paused_at",
        "resumed_at",
    ]
    readonly_fields = ["paused_at", "resumed_at"]
    raw_id_fields = ["offer", "goal"]


class AffiliateSigningKeyInline(admin.TabularInline):  # type: ignore[type-arg]
    """Read only: a key is made with the "new signing key" action, which shows it once."""

    model = AffiliateSigningKey
    extra = 0
    fields = ["prefix", "created_at", "expires_at"]
    readonly_fields = ["prefix", "created_at", "expires_at"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Affiliate)
class AffiliateAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "name", "status", "referrer", "timezone", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "=id"]
    raw_id_fields = ["referrer"]
    inlines = [AffiliatePostbackInline, AffiliateSigningKeyInline]
    actions = ["new_signing_key"]

    @admin.action(description="New signing key (old keys sign 24 h more)", permissions=["change"])
    def new_signing_key(self, request: HttpRequest, queryset: QuerySet[Affiliate]) -> None:
        for affiliate in queryset:
            secret = signing_key_rotate(affiliate=affiliate, overlap_hours=24)
            self.message_user(
                request,
                f"{affiliate}: new signing key {secret} (shown once; give it to the affiliate).",
                messages.WARNING,
            )


@admin.register(AffiliatePostback)
class AffiliatePostbackAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = AffiliatePostbackForm
    list_display = [
        "id",
        "affiliate",
        "offer",
        "goal",
        "url",
        "http_method",
        "fire_on_pending",
        "fire_on_reversal",
        "sign",
        "is_active",
        "paused",
        "pause_reason",
    ]
    list_filter = [
        "is_active",
        ("paused_at", admin.EmptyFieldListFilter),
        "http_method",
        "fire_on_pending",
        "fire_on_reversal",
        "sign",
    ]
    search_fields = ["url", "affiliate__name"]
    raw_id_fields = ["affiliate", "offer", "goal"]
    readonly_fields = ["paused_at", "pause_reason", "resumed_at"]
    actions = ["resume", "test_fire", "backfill_7_days"]

    @admin.display(boolean=True, description="paused", ordering="paused_at")
    def paused(self, postback: AffiliatePostback) -> bool:
        return postback.paused_at is not None

    @admin.action(description="Resume (and send what the pause held back)", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[AffiliatePostback]) -> None:
        now = timezone.now()
        paused = list(queryset.filter(paused_at__isnull=False).values_list("pk", flat=True))
        requeued = sum(outbound.postback_resume(postback_id=pk, now=now) for pk in paused)
        self.message_user(
            request, f"Resumed {len(paused)} postback(s); {requeued} call(s) queued again."
        )

    @admin.action(description="Test fire with sample values", permissions=["change"])
    def test_fire(self, request: HttpRequest, queryset: QuerySet[AffiliatePostback]) -> None:
        for postback in queryset[:20]:  # each is a real outbound call; keep the request short
            try:
                fired = outbound.postback_test_fire(postback_id=postback.pk, now=timezone.now())
            except outbound.FireRateLimited as limited:
                # The affiliate's budget, shared with its own API calls: it protects its tracker.
                self.message_user(
                    request,
                    f"Postback {postback.pk}: not fired, {limited.message}.",
                    messages.ERROR,
                )
                continue
            detail = (
                f"HTTP {fired.http_status} in {fired.latency_ms} ms"
                if fired.http_status is not None
                else "no answer (see the delivery log)"
            )
            level = messages.SUCCESS if fired.result == "delivered" else messages.WARNING
            self.message_user(request, f"Postback {postback.pk}: {fired.result}, {detail}.", level)

    @admin.action(description="Backfill the last 7 days", permissions=["change"])
    def backfill_7_days(self, request: HttpRequest, queryset: QuerySet[AffiliatePostback]) -> None:
        queued = 0
        for postback in queryset:
            try:
                queued += outbound.postback_backfill(postback_id=postback.pk, now=timezone.now())
            except outbound.OutboxError as refused:
                self.message_user(
                    request, f"Postback {postback.pk}: {refused.message}.", messages.WARNING
                )
        self.message_user(request, f"Queued {queued} call(s).")


DELIVERY_FIELDS = (
    "created_at",
    "attempt",
    "http_method",
    "url",
    "http_status",
    "succeeded",
    "latency_ms",
    "error",
    "response_body",
)


class DeliveryInline(admin.TabularInline):  # type: ignore[type-arg]
    model = OutboundPostbackDelivery
    fk_name = "outbox"
    extra = 0
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS
    can_delete = False
    ordering = ["id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PostbackOutbox)
class PostbackOutboxAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "id",
        "created_at",
        "conversion",
        "click_id",
        "postback",
        "conversion_status",
        "resend_number",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "delivered_at",
    ]
    list_filter = ["state", "conversion_status"]
    search_fields = ["=conversion__id", "=conversion__click_id"]
    list_select_related = ["conversion", "postback"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "conversion",
        "postback",
        "conversion_status",
        "resend_number",
        "requested_by",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
        "created_at",
        "updated_at",
        "delivered_at",
    ]
    inlines = [DeliveryInline]
    actions = ["resend", "cancel"]

    @admin.display(description="click id", ordering="conversion__click_id")
    def click_id(self, row: PostbackOutbox) -> str:
        return row.conversion.click_id

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows come from conversions

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nothing to edit by hand; the actions below are the way to act on rows.
        return bool(obj is None and super().has_change_permission(request))

    @admin.action(description="Resend now (delivered ones as a new event)", permissions=["change"])
    def resend(self, request: HttpRequest, queryset: QuerySet[PostbackOutbox]) -> None:
        result = outbound.outbox_resend(
            outbox_ids=queryset.values_list("pk", flat=True),
            now=timezone.now(),
            user_id=request.user.pk,
        )
        self.message_user(request, _resend_message(result))

    @admin.action(description="Cancel (stop trying)", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[PostbackOutbox]) -> None:
        cancelled = outbound.outbox_cancel(
            outbox_ids=queryset.values_list("pk", flat=True), now=timezone.now()
        )
        self.message_user(request, f"Cancelled {cancelled} pending row(s).")


def _resend_message(result: outbound.Resend) -> str:
    message = f"Queued {result.queued} postback(s)"
    if result.already_delivered:
        message += f", {result.already_delivered} of them delivered before (sent as a new event)"
    message += "."
    if result.skipped:
        message += (
            f" {result.skipped} skipped: postback switched off or paused, or the conversion's "
            "status has changed since."
        )
    return message


# For the delivery log's admin (apps.conversions.admin), which is read-only: the action acts on
# the outbox, so it asks for the outbox's change permission (the admin's has_resend_permission).
@admin.action(description="Resend these postbacks (their outbox rows)", permissions=["resend"])
def deliveries_resend(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[OutboundPostbackDelivery],
) -> None:
    """Resend the events these attempts belong to (see outbound.outbox_resend). Test fires, and
    attempts whose outbox row was pruned, have no row and are skipped."""
    ids = set(queryset.filter(outbox__isnull=False).values_list("outbox_id", flat=True))
    without_row = queryset.filter(outbox__isnull=True).count()
    result = outbound.outbox_resend(outbox_ids=ids, now=timezone.now(), user_id=request.user.pk)
    message = _resend_message(result)
    if without_row:
        message += f" {without_row} attempt(s) without an outbox row (test fires, pruned) left out."
    modeladmin.message_user(request, message)
