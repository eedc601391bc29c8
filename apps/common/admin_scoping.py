"""Admin for two audiences: network staff see everything; an advertiser user (is_staff, with an
advertiser) sees and edits only its own advertiser's objects."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest


def advertiser_of(request: HttpRequest) -> int | None:
    return getattr(request.user, "advertiser_id", None)


def _scoped_choices(db_field: Any, lookup: str, advertiser_id: int) -> QuerySet[Any]:
    return db_field.related_model._default_manager.filter(**{lookup: advertiser_id})


class AdvertiserScopedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """`advertiser_path` is the lookup from the model to its advertiser id.

    `scoped_foreign_keys` maps each foreign key an advertiser may point at to the lookup from the
    related model to its advertiser id; its choices (and so what the form accepts) are cut to the
    advertiser's own rows. `advertiser_hidden_fields` are left out for advertiser users
    altogether (network-only data such as the affiliate payout).
    """

    advertiser_path: str = "advertiser_id"
    scoped_foreign_keys: dict[str, str] = {}
    advertiser_hidden_fields: tuple[str, ...] = ()

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        qs = super().get_queryset(request)
        advertiser_id = advertiser_of(request)
        if advertiser_id is not None:
            qs = qs.filter(**{self.advertiser_path: advertiser_id})
        return qs

    def _owns(self, request: HttpRequest, obj: Model | None) -> bool:
        advertiser_id = advertiser_of(request)
        if advertiser_id is None or obj is None:
            return True
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_view_permission(request, obj) and self._owns(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_change_permission(request, obj) and self._owns(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self._owns(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        advertiser_id = advertiser_of(request)
        if advertiser_id is not None and db_field.name in self.scoped_foreign_keys:
            lookup = self.scoped_foreign_keys[db_field.name]
            kwargs["queryset"] = _scoped_choices(db_field, lookup, advertiser_id)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _without_hidden(self, request: HttpRequest, names: Any) -> list[Any]:
        if advertiser_of(request) is None:
            return list(names)
        return [name for name in names if name not in self.advertiser_hidden_fields]

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return self._without_hidden(request, super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> Any:
        return self._without_hidden(request, super().get_readonly_fields(request, obj))

    def get_list_display(self, request: HttpRequest) -> Any:
        return self._without_hidden(request, super().get_list_display(request))

    def get_list_filter(self, request: HttpRequest) -> Any:
        return self._without_hidden(request, super().get_list_filter(request))

    def get_search_fields(self, request: HttpRequest) -> Any:
        return self._without_hidden(request, super().get_search_fields(request))

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # Django allows any lookup on a model's own fields in the changelist URL; without this an
        # advertiser could narrow `?payout__gte=…&payout__lt=…` until it learnt a hidden amount.
        if advertiser_of(request) is not None:
            field = lookup.split("__", 1)[0]
            hidden = {name.removesuffix("_id") for name in self.advertiser_hidden_fields}
            if field.removesuffix("_id") in hidden:
                return False
        return super().lookup_allowed(lookup, value, request)
