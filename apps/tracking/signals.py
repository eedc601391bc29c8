"""Changes to what the hot paths cache tell every web process to drop its catalog."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from apps.advertisers.models import Advertiser
from apps.offers.models import CustomPayout, Goal, Offer, OfferAccess, OfferCap
from apps.partners.models import Affiliate
from apps.quality.models import GoalQualitySetting, QualityProfile
from apps.tracking.catalog import catalog_invalidate, catalog_local_clear

CACHED_MODELS = (
    Offer,
    OfferAccess,
    OfferCap,
    Affiliate,
    Advertiser,
    Goal,
    CustomPayout,
    QualityProfile,
    GoalQualitySetting,
)


def _changed(sender: Any, **kwargs: Any) -> None:
    # This process at once (so the writer reads its own change, even inside the transaction),
    # every process after commit.
    catalog_local_clear()
    transaction.on_commit(catalog_invalidate)


def connect() -> None:
    for model in CACHED_MODELS:
        post_save.connect(_changed, sender=model, dispatch_uid=f"catalog-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"catalog-delete-{model.__name__}")
