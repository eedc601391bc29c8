"""Changes to what the click path caches tell every web process to drop its catalog."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from apps.offers.models import Offer, OfferAccess, OfferCap
from apps.partners.models import Affiliate
from apps.tracking.catalog import catalog_invalidate


def _changed(sender: Any, **kwargs: Any) -> None:
    transaction.on_commit(catalog_invalidate)


def connect() -> None:
    for model in (Offer, OfferAccess, OfferCap, Affiliate):
        post_save.connect(_changed, sender=model, dispatch_uid=f"catalog-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"catalog-delete-{model.__name__}")
