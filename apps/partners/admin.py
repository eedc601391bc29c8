from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from apps.common.safe_http import UnsafeUrl, url_check_on_save
from apps.partners.models import Affiliate, AffiliatePostback


class AffiliatePostbackForm(forms.ModelForm):  # type: ignore[type-arg]
    """The same rule as the API: only public http(s) URLs without credentials."""

    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = AffiliatePostback
        fields = ["affiliate", "offer", "goal", "url", "fire_on_pending", "is_active"]

    def clean_url(self) -> Any:
        url = self.cleaned_data["url"]
        try:
            url_check_on_save(url)
        except UnsafeUrl as refused:
            raise forms.ValidationError(
                "Use a public http(s) URL without credentials.", code="url_not_allowed"
            ) from refused
        return url


class AffiliatePostbackInline(admin.TabularInline):  # type: ignore[type-arg]
    model = AffiliatePostback
    form = AffiliatePostbackForm
    extra = 0
    fields = ["url", "offer", "goal", "fire_on_pending", "is_active"]
    raw_id_fields = ["offer", "goal"]


@admin.register(Affiliate)
class AffiliateAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "name", "status", "referrer", "timezone", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "=id"]
    raw_id_fields = ["referrer"]
    inlines = [AffiliatePostbackInline]


@admin.register(AffiliatePostback)
class AffiliatePostbackAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = AffiliatePostbackForm
    list_display = ["id", "affiliate", "offer", "goal", "url", "fire_on_pending", "is_active"]
    list_filter = ["is_active", "fire_on_pending"]
    search_fields = ["url", "affiliate__name"]
    raw_id_fields = ["affiliate", "offer", "goal"]
