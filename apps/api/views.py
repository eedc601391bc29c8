"""The REST API: thin views that authorize by role, scope every queryset to the caller's own
objects, and call selectors and services."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api import serializers
from apps.api.errors import ApiError
from apps.api.permissions import (
    IsAdvertiser,
    IsAffiliate,
    IsNetworkStaff,
    advertiser_id_of,
    affiliate_of,
)
from apps.api.renderers import StatsCsvRenderer
from apps.commissions.exports import statement_csv, statement_invoice_html
from apps.commissions.models import Statement, TierReached
from apps.commissions.selectors import (
    balance_breakdown_for_affiliate,
    statement_list_for_affiliate,
    tier_reached_list_for_affiliate,
)
from apps.commissions.services import balance_for_affiliate
from apps.conversions.models import Conversion
from apps.offers.models import ConversionStatus, Offer
from apps.offers.selectors import offer_list_for_advertiser, offer_list_for_affiliate
from apps.partners.models import Affiliate
from apps.quality.selectors import quality_report
from apps.stats.selectors import (
    FILTER_FIELDS,
    Scope,
    stats_columns,
    stats_query_parse,
    stats_report,
)

CONVERSION_PARAMETERS = [
    OpenApiParameter("status", str, enum=ConversionStatus.values, description="Only this status."),
]
STATS_PARAMETERS = [
    OpenApiParameter("date_from", str, description="First day (YYYY-MM-DD), inclusive."),
    OpenApiParameter("date_to", str, description="Last day (YYYY-MM-DD), inclusive."),
    OpenApiParameter("timezone", str, description="IANA name; default the account's."),
    OpenApiParameter(
        "group_by", str, description="Comma list: day,hour,offer,affiliate,goal,country,sub1..sub5."
    ),
    OpenApiParameter(
        "format", str, enum=["json", "csv"], description="csv: the rows as a CSV download."
    ),
    *[
        OpenApiParameter(name, str, description=f"Only rows with this {name}.")
        for name in FILTER_FIELDS
    ],
]


def _conversions(qs: QuerySet[Conversion], request: Request) -> QuerySet[Conversion]:
    qs = qs.select_related("goal").order_by("-id")
    status = request.query_params.get("status")
    if status:
        if status not in ConversionStatus.values:
            raise ApiError(
                "invalid_filter", "status must be one of: " + ", ".join(ConversionStatus.values)
            )
        qs = qs.filter(status=status)
    return qs


class _StatsView(APIView, ABC):
    renderer_classes = [JSONRenderer, StatsCsvRenderer]

    @abstractmethod
    def scope(self, request: Request) -> Scope:
        """Whose data this audience sees."""

    def default_timezone(self, request: Request) -> str:
        return "UTC"

    @extend_schema(parameters=STATS_PARAMETERS, responses={200: dict})
    def get(self, request: Request) -> Response:
        try:
            query = stats_query_parse(
                params=request.query_params,
                default_timezone=self.default_timezone(request),
                now=timezone.now(),
            )
        except ValueError as invalid:
            raise ApiError(str(invalid)) from invalid
        scope = self.scope(request)
        self.csv_columns = stats_columns(query=query, scope=scope)
        return Response(stats_report(query=query, scope=scope))

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        # Errors stay JSON with a code, also when the caller asked for CSV.
        if response.status_code >= 400 and isinstance(
            getattr(request, "accepted_renderer", None), StatsCsvRenderer
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)


# --- Affiliate ---------------------------------------------------------------------------------


class AffiliateOfferList(generics.ListAPIView[Offer]):
    permission_classes = [IsAffiliate]
    serializer_class = serializers.AffiliateOfferSerializer

    def get_queryset(self) -> QuerySet[Offer]:
        return offer_list_for_affiliate(affiliate=affiliate_of(self.request))

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "affiliate_id": affiliate_of(self.request).pk}


@extend_schema_view(get=extend_schema(parameters=CONVERSION_PARAMETERS))
class AffiliateConversionList(generics.ListAPIView[Conversion]):
    permission_classes = [IsAffiliate]
    serializer_class = serializers.AffiliateConversionSerializer

    def get_queryset(self) -> QuerySet[Conversion]:
        own = Conversion.objects.filter(affiliate_id=affiliate_of(self.request).pk)
        return _conversions(own, self.request)


class AffiliateStats(_StatsView):
    permission_classes = [IsAffiliate]

    def scope(self, request: Request) -> Scope:
        return Scope(affiliate_id=affiliate_of(request).pk)

    def default_timezone(self, request: Request) -> str:
        return affiliate_of(request).timezone


class AffiliateBalance(APIView):
    permission_classes = [IsAffiliate]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        balances = balance_for_affiliate(affiliate_id=affiliate_of(request).pk)
        return Response(
            {"balances": [{"currency": c, "amount": str(a)} for c, a in balances.items()]}
        )


class AffiliateBalanceDetail(APIView):
    """Per currency: pending (in its hold), available (payable, not paid yet), paid out, total."""

    permission_classes = [IsAffiliate]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        balances = balance_breakdown_for_affiliate(affiliate_id=affiliate_of(request).pk)
        return Response(
            {
                "balances": [
                    {
                        "currency": b.currency,
                        "pending": str(b.pending),
                        "available": str(b.available),
                        "paid": str(b.paid),
                        "total": str(b.total),
                    }
                    for b in balances
                ]
            }
        )


class AffiliateStatementList(generics.ListAPIView[Statement]):
    permission_classes = [IsAffiliate]
    serializer_class = serializers.StatementSerializer

    def get_queryset(self) -> QuerySet[Statement]:
        if getattr(self, "swagger_fake_view", False):
            return Statement.objects.none()
        return statement_list_for_affiliate(affiliate_id=affiliate_of(self.request).pk)


class AffiliateStatementDetail(generics.RetrieveAPIView[Statement]):
    """One of the caller's own statements; anyone else's is a 404, like a missing one."""

    permission_classes = [IsAffiliate]
    serializer_class = serializers.StatementSerializer

    def get_queryset(self) -> QuerySet[Statement]:
        if getattr(self, "swagger_fake_view", False):
            return Statement.objects.none()
        return statement_list_for_affiliate(affiliate_id=affiliate_of(self.request).pk)


class AffiliateStatementCsv(AffiliateStatementDetail):
    @extend_schema(responses={(200, "text/csv"): str})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        statement = self.get_object()
        response = HttpResponse(statement_csv(statement=statement), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="statement-{statement.pk}.csv"'
        return response


class AffiliateStatementInvoice(AffiliateStatementDetail):
    @extend_schema(responses={(200, "text/html"): str})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        return HttpResponse(statement_invoice_html(statement=self.get_object()))


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter("month", str, description="Only this month (YYYY-MM)."),
        ]
    )
)
class AffiliateTierList(generics.ListAPIView[TierReached]):
    """The volume tiers the caller reached, newest month first: from `reached_at` to the end of
    `month` its conversions on the offer earn the tier's payout (when higher than their own)."""

    permission_classes = [IsAffiliate]
    serializer_class = serializers.TierReachedSerializer

    def get_queryset(self) -> QuerySet[TierReached]:
        if getattr(self, "swagger_fake_view", False):
            return TierReached.objects.none()
        month = None
        raw = self.request.query_params.get("month")
        if raw:
            try:
                month = dt.date.fromisoformat(f"{raw}-01")
            except ValueError as invalid:
                raise ApiError("invalid_filter", "month is YYYY-MM.") from invalid
        return tier_reached_list_for_affiliate(
            affiliate_id=affiliate_of(self.request).pk, month=month
        )


# --- Advertiser --------------------------------------------------------------------------------


class AdvertiserOfferList(generics.ListAPIView[Offer]):
    permission_classes = [IsAdvertiser]
    serializer_class = serializers.OfferSerializer

    def get_queryset(self) -> QuerySet[Offer]:
        return offer_list_for_advertiser(advertiser_id=advertiser_id_of(self.request))


@extend_schema_view(get=extend_schema(parameters=CONVERSION_PARAMETERS))
class AdvertiserConversionList(generics.ListAPIView[Conversion]):
    permission_classes = [IsAdvertiser]
    serializer_class = serializers.AdvertiserConversionSerializer

    def get_queryset(self) -> QuerySet[Conversion]:
        own = Conversion.objects.filter(offer__advertiser_id=advertiser_id_of(self.request))
        return _conversions(own, self.request)


class AdvertiserStats(_StatsView):
    permission_classes = [IsAdvertiser]

    def scope(self, request: Request) -> Scope:
        return Scope(advertiser_id=advertiser_id_of(request), include_revenue=True)


# --- Network staff -----------------------------------------------------------------------------


class StaffOfferList(generics.ListAPIView[Offer]):
    permission_classes = [IsNetworkStaff]
    serializer_class = serializers.OfferSerializer
    queryset = Offer.objects.prefetch_related("goals").order_by("id")


class StaffAffiliateList(generics.ListAPIView[Affiliate]):
    permission_classes = [IsNetworkStaff]
    serializer_class = serializers.AffiliateSerializer
    queryset = Affiliate.objects.order_by("id")


@extend_schema_view(get=extend_schema(parameters=CONVERSION_PARAMETERS))
class StaffConversionList(generics.ListAPIView[Conversion]):
    permission_classes = [IsNetworkStaff]
    serializer_class = serializers.StaffConversionSerializer

    def get_queryset(self) -> QuerySet[Conversion]:
        return _conversions(Conversion.objects.all(), self.request)


class StaffStats(_StatsView):
    permission_classes = [IsNetworkStaff]

    def scope(self, request: Request) -> Scope:
        return Scope(include_revenue=True)


class StaffQualityReport(APIView):
    """Lead quality by affiliate and sub id: conversions, share flagged, top reasons (staff)."""

    permission_classes = [IsNetworkStaff]

    @extend_schema(
        parameters=[
            OpenApiParameter("date_from", str, description="First day (YYYY-MM-DD), inclusive."),
            OpenApiParameter("date_to", str, description="Last day (YYYY-MM-DD), inclusive."),
            OpenApiParameter("offer", int),
            OpenApiParameter("affiliate", int),
        ],
        responses={200: dict},
    )
    def get(self, request: Request) -> Response:
        today = timezone.now().date()
        try:
            date_from = dt.date.fromisoformat(request.query_params.get("date_from") or str(today))
            date_to = dt.date.fromisoformat(request.query_params.get("date_to") or str(today))
            ids = {
                name: int(request.query_params[name]) if request.query_params.get(name) else None
                for name in ("offer", "affiliate")
            }
        except (ValueError, OverflowError) as invalid:
            raise ApiError("invalid_query", "Dates are YYYY-MM-DD; ids are integers.") from invalid
        if date_to < date_from or (date_to - date_from).days > 366 or date_to.year > 9998:
            raise ApiError("invalid_date_range")
        start = dt.datetime.combine(date_from, dt.time.min, tzinfo=dt.UTC)
        end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time.min, tzinfo=dt.UTC)
        rows = quality_report(
            date_from=start, date_to=end, offer_id=ids["offer"], affiliate_id=ids["affiliate"]
        )
        return Response({"date_from": str(date_from), "date_to": str(date_to), "results": rows})
