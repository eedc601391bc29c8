from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from apps.api import advertiser_signing, affiliate_postbacks, conversion_actions, views
from apps.api import reconciliation as reconciliation_views

affiliate_router = SimpleRouter()
affiliate_router.register(
    "postbacks", affiliate_postbacks.AffiliatePostbackViewSet, basename="affiliate-postback"
)

urlpatterns = [
    path("affiliate/offers/", views.AffiliateOfferList.as_view(), name="affiliate-offers"),
    path("affiliate/stats/", views.AffiliateStats.as_view(), name="affiliate-stats"),
    path(
        "affiliate/conversions/",
        views.AffiliateConversionList.as_view(),
        name="affiliate-conversions",
    ),
    path("affiliate/balance/", views.AffiliateBalance.as_view(), name="affiliate-balance"),
    path(
        "affiliate/balance/detail/",
        views.AffiliateBalanceDetail.as_view(),
        name="affiliate-balance-detail",
    ),
    path(
        "affiliate/statements/", views.AffiliateStatementList.as_view(), name="affiliate-statements"
    ),
    path(
        "affiliate/statements/<int:pk>/",
        views.AffiliateStatementDetail.as_view(),
        name="affiliate-statement",
    ),
    path(
        "affiliate/statements/<int:pk>/csv/",
        views.AffiliateStatementCsv.as_view(),
        name="affiliate-statement-csv",
    ),
    path(
        "affiliate/statements/<int:pk>/invoice/",
        views.AffiliateStatementInvoice.as_view(),
        name="affiliate-statement-invoice",
    ),
    path("affiliate/tiers/", views.AffiliateTierList.as_view(), name="affiliate-tiers"),
    path(
        "affiliate/conversions/<int:pk>/resend-postbacks/",
        affiliate_postbacks.AffiliateConversionResendPostbacks.as_view(),
        name="affiliate-conversion-resend-postbacks",
    ),
    path(
        "affiliate/signing-keys/",
        affiliate_postbacks.AffiliateSigningKeys.as_view(),
        name="affiliate-signing-keys",
    ),
    path("affiliate/", include(affiliate_router.urls)),
    path("advertiser/offers/", views.AdvertiserOfferList.as_view(), name="advertiser-offers"),
    path(
        "advertiser/conversions/",
        views.AdvertiserConversionList.as_view(),
        name="advertiser-conversions",
    ),
    path("advertiser/stats/", views.AdvertiserStats.as_view(), name="advertiser-stats"),
    path(
        "advertiser/signing-secret/",
        advertiser_signing.AdvertiserSigningSecret.as_view(),
        name="advertiser-signing-secret",
    ),
    path(
        "advertiser/reconciliations/",
        reconciliation_views.ReconciliationListCreate.as_view(),
        name="advertiser-reconciliations",
    ),
    path(
        "advertiser/reconciliations/<int:pk>/",
        reconciliation_views.ReconciliationDetail.as_view(),
        name="advertiser-reconciliation",
    ),
    path(
        "advertiser/reconciliations/<int:pk>/apply/",
        reconciliation_views.ReconciliationApply.as_view(),
        name="advertiser-reconciliation-apply",
    ),
    path(
        "advertiser/conversions/<int:pk>/scrub/",
        conversion_actions.AdvertiserConversionScrub.as_view(),
        name="advertiser-conversion-scrub",
    ),
    path(
        "advertiser/conversions/<int:pk>/history/",
        conversion_actions.AdvertiserConversionHistory.as_view(),
        name="advertiser-conversion-history",
    ),
    path("network/offers/", views.StaffOfferList.as_view(), name="network-offers"),
    path("network/affiliates/", views.StaffAffiliateList.as_view(), name="network-affiliates"),
    path("network/conversions/", views.StaffConversionList.as_view(), name="network-conversions"),
    path("network/stats/", views.StaffStats.as_view(), name="network-stats"),
    path(
        "network/conversions/<int:pk>/status/",
        conversion_actions.StaffConversionStatus.as_view(),
        name="network-conversion-status",
    ),
    path(
        "network/conversions/<int:pk>/reverse/",
        conversion_actions.StaffConversionReverse.as_view(),
        name="network-conversion-reverse",
    ),
    path(
        "network/conversions/<int:pk>/history/",
        conversion_actions.StaffConversionHistory.as_view(),
        name="network-conversion-history",
    ),
    path(
        "network/quality-report/", views.StaffQualityReport.as_view(), name="network-quality-report"
    ),
    # Anything else under the API is a JSON 404 with a code, not Django's HTML page. Only paths
    # ending in "/" match, so a missing trailing slash still gets APPEND_SLASH's redirect.
    re_path(r"^.*/$", views.not_found, name="api-not-found"),
]
