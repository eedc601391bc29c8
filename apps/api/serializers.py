from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from apps.commissions.models import Statement, TierReached
from apps.conversions.models import Conversion
from apps.offers.models import Goal, Offer, PayoutTier
from apps.offers.selectors import tracking_link
from apps.partners.models import Affiliate


class GoalSerializer(serializers.ModelSerializer[Goal]):
    class Meta:
        model = Goal
        fields = ["id", "code", "name", "payout_type", "payout", "default_status", "is_default"]


class AffiliateOfferSerializer(serializers.ModelSerializer[Offer]):
    goals = GoalSerializer(many=True, read_only=True)
    tracking_link = serializers.SerializerMethodField()

    class Meta:
        model = Offer
        fields = [
            "id",
            "name",
            "status",
            "visibility",
            "currency",
            "attribution_window_days",
            "goals",
            "tracking_link",
        ]

    def get_tracking_link(self, offer: Offer) -> str:
        return tracking_link(offer_id=offer.pk, affiliate_id=self.context["affiliate_id"])


class GoalWithRevenueSerializer(GoalSerializer):
    class Meta(GoalSerializer.Meta):
        fields = [*GoalSerializer.Meta.fields, "revenue"]


class OfferSerializer(serializers.ModelSerializer[Offer]):
    goals = GoalWithRevenueSerializer(many=True, read_only=True)

    class Meta:
        model = Offer
        fields = [
            "id",
            "advertiser_id",
            "name",
            "status",
            "visibility",
            "destination_url",
            "fallback_url",
            "currency",
            "attribution_window_days",
            "pixel_methods",
            "min_seconds_to_convert",
            "quality_threshold",
            "goals",
            "created_at",
        ]


class AffiliateConversionSerializer(serializers.ModelSerializer[Conversion]):
    conversion_id = serializers.IntegerField(source="pk")
    goal = serializers.CharField(source="goal.code")

    class Meta:
        model = Conversion
        fields = [
            "conversion_id",
            "created_at",
            "offer_id",
            "goal",
            "status",
            "payout",
            "currency",
            "order_id",
            "click_id",
            "sub1",
            "sub2",
            "sub3",
            "sub4",
            "sub5",
            "source_id",
            "quality_score",
            "quality_reasons",
            "quality_evidence",
        ]

    def get_fields(self) -> dict[str, serializers.Field]:  # type: ignore[type-arg]
        fields = super().get_fields()
        if not settings.QUALITY_SHOW_EVIDENCE_TO_AFFILIATES:
            # Reason codes always; the evidence behind them only if the network chooses to.
            fields.pop("quality_evidence")
        return fields


class AdvertiserConversionSerializer(serializers.ModelSerializer[Conversion]):
    conversion_id = serializers.IntegerField(source="pk")
    goal = serializers.CharField(source="goal.code")

    class Meta:
        model = Conversion
        fields = [
            "conversion_id",
            "created_at",
            "offer_id",
            "affiliate_id",
            "goal",
            "status",
            "revenue",
            "sale_amount",
            "currency",
            "order_id",
            "click_id",
            "quality_score",
            "quality_reasons",
            "adv1",
            "adv2",
            "adv3",
            "adv4",
            "adv5",
        ]


class StaffConversionSerializer(AdvertiserConversionSerializer):
    class Meta(AdvertiserConversionSerializer.Meta):
        fields = [*AdvertiserConversionSerializer.Meta.fields, "payout", "ip", "country"]


class AffiliateSerializer(serializers.ModelSerializer[Affiliate]):
    class Meta:
        model = Affiliate
        fields = ["id", "name", "status", "referrer_id", "timezone", "created_at"]


class StatementSerializer(serializers.ModelSerializer[Statement]):
    class Meta:
        model = Statement
        fields = [
            "id",
            "period_start",
            "period_end",
            "currency",
            "timezone",
            "status",
            "total",
            "minimum_payout",
            "created_at",
            "approved_at",
            "paid_at",
        ]


class PayoutTierSerializer(serializers.ModelSerializer[PayoutTier]):
    class Meta:
        model = PayoutTier
        fields = ["id", "name", "threshold", "goal_id", "payout_type", "payout", "payout_percent"]


class TierReachedSerializer(serializers.ModelSerializer[TierReached]):
    """A volume tier the affiliate reached: conversions of `month` (the offer's time zone)
    created at or after `reached_at` earn the tier's payout."""

    offer_name = serializers.CharField(source="offer.name", read_only=True)
    month = serializers.DateField(format="%Y-%m", read_only=True)
    tier = PayoutTierSerializer(read_only=True)

    class Meta:
        model = TierReached
        fields = ["id", "offer_id", "offer_name", "month", "reached_at", "conversion_id", "tier"]
