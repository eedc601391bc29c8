from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.conversions import pixel as conversion_pixel
from apps.conversions import views as conversion_views
from apps.tracking import views as tracking_views


def bench_bare_redirect(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect("https://shop.example.com/landing")


urlpatterns = [
    # Public tracking endpoints, with the paths other platforms use.
    path("click", tracking_views.click, name="click"),
    path("aff_c", tracking_views.click, name="click-hasoffers"),
    path("postback", conversion_views.postback, name="postback"),
    path("postback/reversal", conversion_views.postback_reversal, name="postback-reversal"),
    path("aff_lsr", conversion_views.postback, name="postback-hasoffers"),
    path("aff_goal", conversion_views.postback, name="postback-hasoffers-goal"),
    path("pixel", conversion_pixel.pixel_image, name="pixel"),
    path("pixel/iframe", conversion_pixel.pixel_iframe, name="pixel-iframe"),
    path("pixel.js", conversion_pixel.pixel_js, name="pixel-js"),
    path("offer-unavailable/", tracking_views.offer_unavailable, name="offer-unavailable"),
    # API
    path("api/v1/", include("apps.api.urls")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]),
        name="api-schema",
    ),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(
            url_name="api-schema", permission_classes=[], authentication_classes=[]
        ),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
]

if settings.BENCH_ENDPOINTS:
    # The framework's ceiling for the click benchmark: a view that only answers 302.
    urlpatterns.append(path("bench/bare-302", bench_bare_redirect))
