"""Admin for advertiser CSV reconciliation: upload a file, read the report, apply the advertiser's
statuses. Staff pick the advertiser; an advertiser user uploads for its own advertiser and sees
only its own runs (another's is a 404)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.advertisers.models import Advertiser
from apps.common.admin_scoping import AdvertiserScopedAdmin, advertiser_of
from apps.conversions.models import ReconciliationRun
from apps.conversions.reconciliation import (
    COLUMN_ALIASES,
    MAX_FILE_BYTES,
    MAX_ROWS,
    ReconciliationCategory,
    ReconciliationError,
    reconciliation_apply,
    reconciliation_run_create,
)

# Rows of each category shown on the run page; the API gives the whole report.
ROWS_SHOWN = 500
_MAX_MB = MAX_FILE_BYTES // (1024 * 1024)
# Room for the multipart envelope and the form fields around the file.
_ENVELOPE_BYTES = 64 * 1024


_PAIR = [
    ("line", "line"),
    ("order id", "order_id"),
    ("click id", "click_id"),
    ("conversion", "conversion_id"),
    ("date", "created_at"),
]
_COLUMNS: dict[ReconciliationCategory, list[tuple[str, str]]] = {
    ReconciliationCategory.STATUS_MISMATCH: [
        *_PAIR,
        ("our status", "network_status"),
        ("advertiser's status", "advertiser_status"),
        ("can apply", "applicable"),
        ("applied", "apply_result"),
        ("why not", "apply_error"),
    ],
    ReconciliationCategory.AMOUNT_MISMATCH: [
        *_PAIR,
        ("currency", "currency"),
        ("our amount", "network_amount"),
        ("advertiser's amount", "advertiser_amount"),
    ],
    ReconciliationCategory.MISSING_IN_NETWORK: [
        ("line", "line"),
        ("order id", "order_id"),
        ("click id", "click_id"),
        ("advertiser's amount", "advertiser_amount"),
        ("advertiser's status", "advertiser_status"),
    ],
    ReconciliationCategory.MISSING_IN_ADVERTISER: [
        ("conversion", "conversion_id"),
        ("order id", "order_id"),
        ("click id", "click_id"),
        ("date", "created_at"),
        ("currency", "currency"),
        ("our amount", "network_amount"),
        ("our status", "network_status"),
    ],
    ReconciliationCategory.ROW_ERROR: [
        ("line", "line"),
        ("problem", "code"),
        ("detail", "message"),
        ("order id", "order_id"),
        ("click id", "click_id"),
    ],
}


def _cell(row: dict[str, Any], key: str) -> dict[str, Any]:
    """One table cell: its text, and a link for a conversion id."""
    value = row.get(key)
    if value is None or value == "":
        return {"text": "", "url": None}
    if key == "conversion_id":
        url = reverse("admin:conversions_conversion_change", args=[value])
        return {"text": value, "url": url}
    if key == "created_at":
        return {"text": str(value)[:19].replace("T", " "), "url": None}
    if isinstance(value, bool):
        return {"text": "yes" if value else "no", "url": None}
    return {"text": value, "url": None}


class ReconciliationUploadForm(forms.Form):
    advertiser = forms.ModelChoiceField(queryset=Advertiser.objects.order_by("name"))
    file = forms.FileField(
        label="Advertiser's CSV",
        help_text=f"A header row, then one line per conversion; at most {_MAX_MB} MB and "
        f"{MAX_ROWS:,} rows. Comma or semicolon separated, UTF-8.",
    )
    date_from = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="First day (UTC) of our conversions to compare; empty: the span of the "
        "conversions the file matches.",
    )
    date_to = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Last day (UTC)."
    )

    def __init__(self, *args: Any, advertiser_id: int | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if advertiser_id is not None:
            del self.fields["advertiser"]  # an advertiser user uploads for itself only

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_FILE_BYTES:
            raise forms.ValidationError(f"The file is larger than {_MAX_MB} MB.")
        return upload


class ReconciliationRunAdmin(AdvertiserScopedAdmin):
    list_display = [
        "id",
        "created_at",
        "advertiser",
        "file_name",
        "date_from",
        "date_to",
        "matched",
        "differences",
        "applied_at",
    ]
    list_filter = ["advertiser", ("applied_at", admin.EmptyFieldListFilter)]
    search_fields = ["file_name"]
    date_hierarchy = "created_at"
    list_select_related = ["advertiser"]
    # The filter would list every advertiser's name; an advertiser user only has its own runs.
    advertiser_hidden_fields = ("advertiser",)

    # --- Who may do what ---------------------------------------------------------------------
    # Advertiser users need no model permission here: reconciling their own file is part of
    # what an advertiser login is for, and the querysets are scoped to their advertiser.

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if advertiser_of(request) is not None:
            return self._owns(request, obj)
        return super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return advertiser_of(request) is not None or super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False  # a run is a record; applying it is its own action

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return advertiser_of(request) is None and super().has_delete_permission(request, obj)

    def may_apply(self, request: HttpRequest, run: ReconciliationRun) -> bool:
        if advertiser_of(request) is not None:
            return self._owns(request, run)
        return request.user.has_perm("conversions.change_reconciliationrun")

    # --- Changelist columns ------------------------------------------------------------------

    @staticmethod
    def _count(run: ReconciliationRun, category: ReconciliationCategory) -> int:
        return int(run.summary.get("categories", {}).get(category.value, {}).get("count", 0))

    @admin.display(description="matched")
    def matched(self, run: ReconciliationRun) -> int:
        return self._count(run, ReconciliationCategory.MATCHED)

    @admin.display(description="differences")
    def differences(self, run: ReconciliationRun) -> int:
        return sum(
            self._count(run, category)
            for category in ReconciliationCategory
            if category != ReconciliationCategory.MATCHED
        )

    # --- Views -------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:  # type: ignore[override]
        own = [
            path(
                "<path:object_id>/apply/",
                self.admin_site.admin_view(require_POST(self.apply_view)),
                name="conversions_reconciliationrun_apply",
            ),
        ]
        return own + super().get_urls()  # type: ignore[operator]

    def _run(self, request: HttpRequest, object_id: str) -> ReconciliationRun:
        # get_object uses the scoped queryset: another advertiser's run is "not found".
        run = self.get_object(request, unquote(object_id))
        if run is None:
            raise Http404("No such reconciliation run.")
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return run

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        advertiser_id = advertiser_of(request)
        form = ReconciliationUploadForm(advertiser_id=advertiser_id)
        too_large = False
        if request.method == "POST":
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            # Refuse an oversized body before Django reads it into a temp file.
            too_large = declared > MAX_FILE_BYTES + _ENVELOPE_BYTES
            if not too_large:
                form = ReconciliationUploadForm(
                    request.POST, request.FILES, advertiser_id=advertiser_id
                )
                run = self._upload(request, form, advertiser_id)
                if run is not None:
                    return HttpResponseRedirect(
                        reverse("admin:conversions_reconciliationrun_change", args=[run.pk])
                    )
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "opts": self.opts,
            "title": "Reconcile an advertiser's CSV",
            "form": form,
            "too_large": too_large,
            "max_mb": _MAX_MB,
            "column_aliases": COLUMN_ALIASES,
        }
        return TemplateResponse(request, "admin/conversions/reconciliation_upload.html", context)

    def _upload(
        self, request: HttpRequest, form: ReconciliationUploadForm, advertiser_id: int | None
    ) -> ReconciliationRun | None:
        if not form.is_valid():
            return None
        data = form.cleaned_data
        upload = data["file"]
        try:
            run = reconciliation_run_create(
                advertiser_id=advertiser_id if advertiser_id is not None else data["advertiser"].pk,
                user_id=request.user.pk,
                file_name=str(upload.name or ""),
                content=upload.read(MAX_FILE_BYTES + 1),
                date_from=data.get("date_from"),
                date_to=data.get("date_to"),
                now=timezone.now(),
            )
        except ReconciliationError as error:
            field = "date_from" if error.code == "invalid_date_range" else "file"
            form.add_error(field, error.message[:1].upper() + error.message[1:] + ".")
            return None
        self.message_user(request, "The file was compared; the report is below.", messages.SUCCESS)
        return run

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run = self._run(request, object_id)
        summary = run.summary.get("categories", {})
        not_listed = run.summary.get("not_listed", {})
        sections = []
        for category in ReconciliationCategory:
            if category == ReconciliationCategory.MATCHED:
                continue
            rows = [row for row in run.report if row["category"] == category.value]
            columns = _COLUMNS[category]
            sections.append(
                {
                    "category": category.value,
                    "label": category.label,
                    "count": summary.get(category.value, {}).get("count", 0),
                    "headers": [header for header, _key in columns],
                    "rows": [
                        [_cell(row, key) for _header, key in columns] for row in rows[:ROWS_SHOWN]
                    ],
                    "not_shown": len(rows[ROWS_SHOWN:]) + not_listed.get(category.value, 0),
                }
            )
        status_count = summary.get(ReconciliationCategory.STATUS_MISMATCH.value, {}).get("count", 0)
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "opts": self.opts,
            "title": f"Reconciliation {run.pk}: {run.file_name}",
            "run": run,
            "summary_rows": [
                {
                    "label": category.label,
                    "count": summary.get(category.value, {}).get("count", 0),
                    "network_amount": summary.get(category.value, {}).get("network_amount", {}),
                    "advertiser_amount": summary.get(category.value, {}).get(
                        "advertiser_amount", {}
                    ),
                }
                for category in ReconciliationCategory
            ],
            "sections": sections,
            "applied": run.summary.get("applied"),
            "can_apply": run.applied_at is None
            and status_count > 0
            and self.may_apply(request, run),
            "apply_url": reverse("admin:conversions_reconciliationrun_apply", args=[run.pk]),
            "show_advertiser": advertiser_of(request) is None,
        }
        return TemplateResponse(request, "admin/conversions/reconciliation_detail.html", context)

    def apply_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        run = self._run(request, object_id)
        if not self.may_apply(request, run):
            raise PermissionDenied
        try:
            result = reconciliation_apply(
                run_id=run.pk,
                user_id=request.user.pk,
                now=timezone.now(),
                advertiser_id=advertiser_of(request),
            )
        except ReconciliationError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            if result.applied_now:
                self.message_user(
                    request,
                    f"Advertiser statuses applied: {result.changed} changed, "
                    f"{result.unchanged} already so, {result.refused} refused.",
                    messages.WARNING if result.refused else messages.SUCCESS,
                )
            else:
                self.message_user(
                    request, "This run was already applied; nothing changed.", messages.INFO
                )
        return HttpResponseRedirect(
            reverse("admin:conversions_reconciliationrun_change", args=[run.pk])
        )


admin.site.register(ReconciliationRun, ReconciliationRunAdmin)
