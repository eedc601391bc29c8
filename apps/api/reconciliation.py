"""Advertiser CSV reconciliation over the API: an advertiser uploads its export and reads the
report (its own runs only); network staff do the same for any advertiser (advertiser_id)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Role, User
from apps.advertisers.models import Advertiser
from apps.api.errors import ApiError
from apps.api.permissions import IsAdvertiser, IsNetworkStaff, advertiser_id_of
from apps.common.text import digits_int
from apps.conversions.models import ReconciliationRun
from apps.conversions.reconciliation import (
    MAX_FILE_BYTES,
    reconciliation_apply,
    reconciliation_list,
    reconciliation_run_create,
)

# Room for the multipart envelope and the form fields around the file.
_ENVELOPE_BYTES = 64 * 1024


class ReconciliationRunSerializer(serializers.ModelSerializer[ReconciliationRun]):
    class Meta:
        model = ReconciliationRun
        fields = [
            "id",
            "advertiser_id",
            "file_name",
            "created_at",
            "date_from",
            "date_to",
            "summary",
            "applied_at",
        ]


class ReconciliationRunDetailSerializer(ReconciliationRunSerializer):
    class Meta(ReconciliationRunSerializer.Meta):
        fields = [*ReconciliationRunSerializer.Meta.fields, "report"]


class ReconciliationUploadSerializer(serializers.Serializer[Any]):
    file = serializers.FileField(
        help_text="CSV with a header row: order_id and/or click_id, amount, status."
    )
    date_from = serializers.DateField(required=False, allow_null=True)
    date_to = serializers.DateField(required=False, allow_null=True)
    advertiser_id = serializers.IntegerField(
        required=False, help_text="Staff only (required for staff); advertisers upload their own."
    )


class ReconciliationApplySerializer(serializers.Serializer[Any]):
    applied_now = serializers.BooleanField(help_text="False: the run had been applied before.")
    changed = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    refused = serializers.IntegerField()
    run = ReconciliationRunDetailSerializer()


def _advertiser_scope(request: Request) -> int | None:
    """The advertiser the caller is limited to; None for network staff."""
    user = request.user
    if isinstance(user, User) and user.role == Role.STAFF:
        return None
    return advertiser_id_of(request)


_AUDIENCE = [IsAdvertiser | IsNetworkStaff]


def _runs_for(view: generics.GenericAPIView[ReconciliationRun]) -> QuerySet[ReconciliationRun]:
    if getattr(view, "swagger_fake_view", False):  # schema generation: no caller
        return ReconciliationRun.objects.none()
    runs = reconciliation_list(advertiser_id=_advertiser_scope(view.request))
    advertiser_filter = view.request.query_params.get("advertiser_id")
    if advertiser_filter:
        advertiser_id = digits_int(advertiser_filter)
        if advertiser_id is None:
            raise ApiError("invalid_filter", "advertiser_id must be an integer")
        runs = runs.filter(advertiser_id=advertiser_id)
    return runs


@extend_schema_view(
    get=extend_schema(
        parameters=[OpenApiParameter("advertiser_id", int, description="Staff: one advertiser.")]
    )
)
class ReconciliationListCreate(generics.ListAPIView[ReconciliationRun]):
    permission_classes = _AUDIENCE
    serializer_class = ReconciliationRunSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[ReconciliationRun]:
        return _runs_for(self)

    @extend_schema(
        request={"multipart/form-data": ReconciliationUploadSerializer},
        responses={201: ReconciliationRunDetailSerializer},
    )
    def post(self, request: Request) -> Response:
        # Refuse an oversized body before it is read into memory or a temp file.
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > MAX_FILE_BYTES + _ENVELOPE_BYTES:
            raise ApiError("file_too_large", "The file is larger than 5 MB.", 413)
        upload = ReconciliationUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        advertiser_id = _advertiser_scope(request)
        if advertiser_id is None:
            if data.get("advertiser_id") is None:
                raise ApiError("advertiser_required", "Staff must give advertiser_id.")
            advertiser_id = int(data["advertiser_id"])
            if not Advertiser.objects.filter(pk=advertiser_id).exists():
                raise ApiError("unknown_advertiser", "No advertiser with this id.")
        file = data["file"]
        if file.size > MAX_FILE_BYTES:
            raise ApiError("file_too_large", "The file is larger than 5 MB.", 413)
        run = reconciliation_run_create(
            advertiser_id=advertiser_id,
            user_id=request.user.pk,
            file_name=str(file.name or ""),
            content=file.read(MAX_FILE_BYTES + 1),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            now=timezone.now(),
        )
        return Response(ReconciliationRunDetailSerializer(run).data, status=status.HTTP_201_CREATED)


class ReconciliationDetail(generics.RetrieveAPIView[ReconciliationRun]):
    """One run with its report; another advertiser's is a 404, like a missing one."""

    permission_classes = _AUDIENCE
    serializer_class = ReconciliationRunDetailSerializer

    def get_queryset(self) -> QuerySet[ReconciliationRun]:
        return _runs_for(self)


class ReconciliationApply(APIView):
    """Set each status-mismatch conversion to the advertiser's status. Applying twice changes
    nothing the second time. Amounts are never changed."""

    permission_classes = _AUDIENCE

    @extend_schema(request=None, responses={200: ReconciliationApplySerializer})
    def post(self, request: Request, pk: int) -> Response:
        result = reconciliation_apply(
            run_id=pk,
            user_id=request.user.pk,
            now=timezone.now(),
            advertiser_id=_advertiser_scope(request),
        )
        return Response(
            {
                "applied_now": result.applied_now,
                "changed": result.changed,
                "unchanged": result.unchanged,
                "refused": result.refused,
                "run": ReconciliationRunDetailSerializer(result.run).data,
            }
        )
