"""An advertiser's own HMAC signing secret over the API: see what is set, rotate it. Scoped to the
caller's advertiser (there is no id in the URL to get wrong); the new secret is shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.advertisers.models import Advertiser
from apps.advertisers.services import (
    SIGNING_SECRET_MAX_OVERLAP_HOURS,
    advertiser_signing_secret_rotate,
)
from apps.api.permissions import IsAdvertiser, advertiser_id_of


class SigningSecretSerializer(serializers.ModelSerializer[Advertiser]):
    previous_valid_until = serializers.SerializerMethodField(
        help_text="Until when the secret replaced by the last rotation is still accepted."
    )
    previous_prefix = serializers.SerializerMethodField()

    class Meta:
        model = Advertiser
        fields = [
            "signing_secret_prefix",
            "signing_secret_rotated_at",
            "require_signature",
            "previous_prefix",
            "previous_valid_until",
        ]

    def _previous_valid_until(self, advertiser: Advertiser) -> datetime | None:
        return advertiser.previous_signing_secret_valid_until(timezone.now())

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_previous_valid_until(self, advertiser: Advertiser) -> str | None:
        expires_at = self._previous_valid_until(advertiser)
        if expires_at is None:
            return None
        return str(serializers.DateTimeField().to_representation(expires_at))

    def get_previous_prefix(self, advertiser: Advertiser) -> str:
        if self._previous_valid_until(advertiser) is None:
            return ""
        return advertiser.previous_signing_secret_prefix


class SigningSecretRotateRequest(serializers.Serializer[Any]):
    overlap_hours = serializers.IntegerField(
        min_value=0,
        max_value=SIGNING_SECRET_MAX_OVERLAP_HOURS,
        required=False,
        help_text="How long the secret you have now keeps working alongside the new one "
        "(default: the network's setting, usually 24).",
    )


class SigningSecretRotatedAnswer(SigningSecretSerializer):
    secret = serializers.CharField(help_text="Shown this once: store it now.")

    class Meta(SigningSecretSerializer.Meta):
        fields = [*SigningSecretSerializer.Meta.fields, "secret"]


class AdvertiserSigningSecret(APIView):
    """Your HMAC signing secret for postbacks (headers X-OpenCPA-Timestamp and X-OpenCPA-Signature:
    "v1=<hex HMAC-SHA256>" over "<timestamp>\\n<METHOD>\\n<path>\\n<query string>\\n<body>").

    GET shows which secret is set (its prefix, never the secret). POST issues a new one, shown
    once; the one it replaces keeps being accepted for overlap_hours, so you can deploy the new
    secret without a refused postback."""

    permission_classes = [IsAdvertiser]

    def _advertiser(self, request: Request) -> Advertiser:
        return Advertiser.objects.get(pk=advertiser_id_of(request))

    @extend_schema(responses=SigningSecretSerializer)
    def get(self, request: Request) -> Response:
        return Response(SigningSecretSerializer(self._advertiser(request)).data)

    @extend_schema(request=SigningSecretRotateRequest, responses={201: SigningSecretRotatedAnswer})
    def post(self, request: Request) -> Response:
        body = SigningSecretRotateRequest(data=request.data)
        body.is_valid(raise_exception=True)
        rotated = advertiser_signing_secret_rotate(
            advertiser_id=advertiser_id_of(request),
            now=timezone.now(),
            overlap_hours=body.validated_data.get("overlap_hours"),  # None: the network default
        )
        answer = SigningSecretSerializer(rotated.advertiser).data
        return Response({**answer, "secret": rotated.secret}, status=201)
