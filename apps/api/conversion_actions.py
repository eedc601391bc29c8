"""Status changes over the API: staff move or reverse any conversion, an advertiser scrubs its
own within the scrub window; both see a conversion's status history. Every move goes through
apps.conversions.status (allowed moves only, recorded with who, when and why)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.permissions import IsAdvertiser, IsNetworkStaff, advertiser_id_of
from apps.conversions.models import Conversion, ConversionStatusChange, StatusChangeSource
from apps.conversions.status import (
    StatusChangeRefused,
    conversion_reverse,
    conversion_scrub,
    conversion_status_change,
)
from apps.offers.models import ConversionStatus


class StatusChangeSerializer(serializers.ModelSerializer[ConversionStatusChange]):
    class Meta:
        model = ConversionStatusChange
        fields = ["created_at", "old_status", "new_status", "source", "user_id", "reason"]


class StatusRequestSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=ConversionStatus.choices)
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class ReasonSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class StatusChangeAnswer(serializers.Serializer[Any]):
    conversion_id = serializers.IntegerField()
    status = serializers.CharField()
    changed = serializers.BooleanField()


def _answer(conversion: Conversion, changed: bool) -> Response:
    return Response(
        {"conversion_id": conversion.pk, "status": conversion.status, "changed": changed}
    )


def _history(conversions: Any, pk: int) -> Response:
    conversion = conversions.filter(pk=pk).first()
    if conversion is None:
        raise StatusChangeRefused("conversion_not_found", http_status=404)
    changes = ConversionStatusChange.objects.filter(conversion=conversion).order_by("id")
    return Response(StatusChangeSerializer(changes, many=True).data)


class StaffConversionStatus(APIView):
    """Move a conversion to another status (pending -> approved/rejected, approved -> reversed,
    rejected -> approved). Asking for the status it has is a no-op answering changed=false."""

    permission_classes = [IsNetworkStaff]

    @extend_schema(request=StatusRequestSerializer, responses=StatusChangeAnswer)
    def post(self, request: Request, pk: int) -> Response:
        body = StatusRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conversion, changed = conversion_status_change(
            conversion_id=pk,
            new_status=ConversionStatus(body.validated_data["status"]),
            source=StatusChangeSource.API,
            now=timezone.now(),
            user_id=request.user.pk,
            reason=body.validated_data["reason"],
        )
        return _answer(conversion, changed)


class StaffConversionReverse(APIView):
    """Reverse an approved conversion (its commission comes back through the ledger) or reject a
    pending one. Idempotent."""

    permission_classes = [IsNetworkStaff]

    @extend_schema(request=ReasonSerializer, responses=StatusChangeAnswer)
    def post(self, request: Request, pk: int) -> Response:
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conversion, changed = conversion_reverse(
            conversion_id=pk,
            source=StatusChangeSource.API,
            now=timezone.now(),
            user_id=request.user.pk,
            reason=body.validated_data["reason"],
        )
        return _answer(conversion, changed)


class StaffConversionHistory(APIView):
    permission_classes = [IsNetworkStaff]

    @extend_schema(responses=StatusChangeSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        return _history(Conversion.objects.all(), pk)


class AdvertiserConversionScrub(APIView):
    """The advertiser rejects one of its own conversions within its scrub window (an approved one
    is reversed). Another advertiser's conversion is not found."""

    permission_classes = [IsAdvertiser]

    @extend_schema(request=ReasonSerializer, responses=StatusChangeAnswer)
    def post(self, request: Request, pk: int) -> Response:
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conversion, changed = conversion_scrub(
            conversion_id=pk,
            advertiser_id=advertiser_id_of(request),
            now=timezone.now(),
            user_id=request.user.pk,
            reason=body.validated_data["reason"],
        )
        return _answer(conversion, changed)


class AdvertiserConversionHistory(APIView):
    permission_classes = [IsAdvertiser]

    @extend_schema(responses=StatusChangeSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        conversions = Conversion.objects.filter(offer__advertiser_id=advertiser_id_of(request))
        return _history(conversions, pk)
