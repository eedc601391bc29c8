"""An affiliate's own postback URLs over the API: create, list, delete; resume one that was paused,
backfill recent conversions, fire a test call; resend the postbacks of one conversion; signing
keys. Every lookup is scoped to the caller's affiliate (another's object is a 404)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.permissions import IsAffiliate, affiliate_of
from apps.common.safe_http import URL_REFUSED, UnsafeUrl, url_check_on_save
from apps.conversions import outbound
from apps.offers.models import Goal
from apps.offers.selectors import offer_list_for_affiliate
from apps.partners.models import AffiliatePostback, AffiliateSigningKey
from apps.partners.services import signing_key_rotate

_http_url = URLValidator(schemes=["http", "https"])


def postback_url_check(value: str) -> None:
    """Raises DjangoValidationError or UnsafeUrl for a URL we will not call."""
    _http_url(value)  # the model's URLField rule: a well-formed URL, no white space
    url_check_on_save(value)


class AffiliatePostbackSerializer(serializers.ModelSerializer[AffiliatePostback]):
    offer_id = serializers.IntegerField(required=False, allow_null=True)
    goal_id = serializers.IntegerField(required=False, allow_null=True)
    url = serializers.CharField(max_length=2000)

    class Meta:
        model = AffiliatePostback
        fields = [
            "id",
            "url",
            "offer_id",
            "goal_id",
            "http_method",
            "fire_on_pending",
            "fire_on_reversal",
            "sign",
            "is_active",
            "paused_at",
            "pause_reason",
            "resumed_at",
            "created_at",
        ]
        read_only_fields = ["id", "paused_at", "pause_reason", "resumed_at", "created_at"]

    def validate_url(self, value: str) -> str:
        try:
            postback_url_check(value)
        except (DjangoValidationError, UnsafeUrl) as refused:
            # One answer for every refusal: the reason would help someone probe our network.
            raise serializers.ValidationError(URL_REFUSED, code="url_not_allowed") from refused
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        offer_id, goal_id = attrs.get("offer_id"), attrs.get("goal_id")
        runnable = self.context["runnable_offer_ids"]
        if offer_id is not None and offer_id not in runnable:
            raise serializers.ValidationError({"offer_id": "Unknown offer."}, code="unknown_offer")
        if goal_id is not None and (
            offer_id is None or not Goal.objects.filter(pk=goal_id, offer_id=offer_id).exists()
        ):
            raise serializers.ValidationError({"goal_id": "Unknown goal."}, code="unknown_goal")
        return attrs


class ResumeAnswer(serializers.Serializer[Any]):
    requeued = serializers.IntegerField(help_text="Held-back calls queued again.")
    postback = AffiliatePostbackSerializer()


class BackfillRequest(serializers.Serializer[Any]):
    days = serializers.IntegerField(
        min_value=1, max_value=outbound.BACKFILL_MAX_DAYS, default=outbound.BACKFILL_DEFAULT_DAYS
    )


class QueuedAnswer(serializers.Serializer[Any]):
    queued = serializers.IntegerField()


class TestFireAnswer(serializers.Serializer[Any]):
    result = serializers.ChoiceField(
        choices=["delivered", "failed", "refused"],
        help_text="refused: we do not call this URL (a non-public address, a bad URL).",
    )
    http_status = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)


class ResendAnswer(serializers.Serializer[Any]):
    queued = serializers.IntegerField(help_text="Calls going out now.")
    already_delivered = serializers.IntegerField(
        help_text="Of those, calls your tracker had already answered with a 2xx: sent again as "
        "a new event (a new webhook-id, so a de-duplicating receiver takes it)."
    )
    skipped = serializers.IntegerField(
        help_text="Not sent: the postback is switched off or paused (resume it first)."
    )


class RateLimitedAnswer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text='"rate_limited"')
    detail = serializers.CharField()


class AffiliatePostbackViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[AffiliatePostback],
):
    permission_classes = [IsAffiliate]
    serializer_class = AffiliatePostbackSerializer

    def get_queryset(self) -> QuerySet[AffiliatePostback]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no caller
            return AffiliatePostback.objects.none()
        return AffiliatePostback.objects.filter(affiliate=affiliate_of(self.request)).order_by("id")

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if self.request.method == "POST" and self.action == "create":
            offers = offer_list_for_affiliate(affiliate=affiliate_of(self.request))
            context["runnable_offer_ids"] = set(offers.values_list("pk", flat=True))
        return context

    def perform_create(self, serializer: Any) -> None:
        serializer.save(affiliate=affiliate_of(self.request))

    @extend_schema(request=None, responses=ResumeAnswer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Call a paused postback again, and send what was held back while it was paused."""
        postback = self.get_object()
        requeued = outbound.postback_resume(postback_id=postback.pk, now=timezone.now())
        postback.refresh_from_db()
        return Response(
            {"requeued": requeued, "postback": AffiliatePostbackSerializer(postback).data}
        )

    @extend_schema(request=BackfillRequest, responses=QueuedAnswer)
    @action(detail=True, methods=["post"])
    def backfill(self, request: Request, pk: str | None = None) -> Response:
        """Send this postback for your conversions of the last `days` days (default 7, at most
        30) that it covers and that it was not sent for yet."""
        postback = self.get_object()
        body = BackfillRequest(data=request.data)
        body.is_valid(raise_exception=True)
        queued = outbound.postback_backfill(
            postback_id=postback.pk, now=timezone.now(), days=body.validated_data["days"]
        )
        return Response({"queued": queued})

    @extend_schema(request=None, responses={200: TestFireAnswer, 429: RateLimitedAnswer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        """Call the URL once now with sample values (click_id "test000…", payout 1.00). At most
        OUTBOUND_TEST_FIRE_PER_MINUTE (10) a minute per affiliate: beyond, 429 with code
        "rate_limited" and Retry-After."""
        postback = self.get_object()
        fired = outbound.postback_test_fire(postback_id=postback.pk, now=timezone.now())
        return Response(
            {
                "result": fired.result,
                "http_status": fired.http_status,
                "latency_ms": fired.latency_ms,
            }
        )


class AffiliateConversionResendPostbacks(APIView):
    """Send your postbacks for one of your conversions again, including postbacks added since
    the conversion happened. Calls not answered with a 2xx yet get a fresh set of attempts;
    calls already delivered go out once more as a new event (webhook-id "msg_<new id>")."""

    permission_classes = [IsAffiliate]

    @extend_schema(request=None, responses=ResendAnswer)
    def post(self, request: Request, pk: int) -> Response:
        resent = outbound.conversion_postbacks_resend(
            conversion_id=pk,
            affiliate_id=affiliate_of(request).pk,
            now=timezone.now(),
            user_id=request.user.pk,
        )
        return Response(
            {
                "queued": resent.queued,
                "already_delivered": resent.already_delivered,
                "skipped": resent.skipped,
            }
        )


class SigningKeySerializer(serializers.ModelSerializer[AffiliateSigningKey]):
    class Meta:
        model = AffiliateSigningKey
        fields = ["id", "prefix", "created_at", "expires_at"]


class SigningKeyRotateRequest(serializers.Serializer[Any]):
    overlap_hours = serializers.IntegerField(
        min_value=0,
        max_value=24 * 14,
        default=24,
        help_text="How long the keys you have now keep signing alongside the new one.",
    )


class SigningKeyCreatedAnswer(SigningKeySerializer):
    secret = serializers.CharField(help_text="Shown this once: store it now.")

    class Meta(SigningKeySerializer.Meta):
        fields = [*SigningKeySerializer.Meta.fields, "secret"]


class AffiliateSigningKeys(generics.ListCreateAPIView[AffiliateSigningKey]):
    """Keys that sign postbacks marked `sign`, the Standard Webhooks way: headers webhook-id
    ("msg_<id>", the same on every retry of one event), webhook-timestamp and webhook-signature
    ("v1,<base64 HMAC-SHA256>" per key, space-separated), over "{id}.{timestamp}.{payload}". The
    payload is the JSON body of a POST postback and, for GET (no body), the request path and query
    exactly as received ("/pb?cid=..."). The key is the base64-decoded part after "whsec_".

    POST adds a key (its secret is shown once); the keys you had sign alongside it for
    overlap_hours, so you can switch your receiver over without losing a postback."""

    permission_classes = [IsAffiliate]
    serializer_class = SigningKeySerializer

    def get_queryset(self) -> QuerySet[AffiliateSigningKey]:
        if getattr(self, "swagger_fake_view", False):
            return AffiliateSigningKey.objects.none()
        return AffiliateSigningKey.objects.filter(affiliate=affiliate_of(self.request)).order_by(
            "-created_at", "-id"
        )

    @extend_schema(request=SigningKeyRotateRequest, responses={201: SigningKeyCreatedAnswer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = SigningKeyRotateRequest(data=request.data)
        body.is_valid(raise_exception=True)
        affiliate = affiliate_of(request)
        secret = signing_key_rotate(
            affiliate=affiliate, overlap_hours=body.validated_data["overlap_hours"]
        )
        key = AffiliateSigningKey.objects.filter(affiliate=affiliate).order_by("-id").first()
        return Response({**SigningKeySerializer(key).data, "secret": secret}, status=201)
