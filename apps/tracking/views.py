from __future__ import annotations

import logging

from django.core.exceptions import DisallowedRedirect, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.views.decorators.http import require_safe

from apps.common.net import request_is_https
from apps.tracking import services
from apps.tracking.http import click_respond

logger = logging.getLogger(__name__)


@require_safe
def click(request: HttpRequest) -> HttpResponse:
    """`GET /click` (and HasOffers' `/aff_c`): 302 to the offer, or to a fallback. Never a 500.

    In production config/wsgi.py answers these paths before Django's middleware; this view is the
    same logic for everything that goes through Django (tests, runserver)."""
    try:
        query: dict[str, str] | None = {key: request.GET.get(key, "") for key in request.GET}
    except SuspiciousOperation:  # too many parameters and the like
        query = None
    answer = click_respond(
        meta=request.META, query=query, now=timezone.now(), secure=request_is_https(request.META)
    )
    try:
        response = HttpResponseRedirect(answer.location)
    except DisallowedRedirect:  # a fallback URL Django will not redirect to (bad scheme, length)
        logger.error("unusable fallback URL %.200r", answer.location)
        response = HttpResponseRedirect(services.click_fallback_url(None))
        response["X-Fallback-Reason"] = services.FallbackReason.BAD_DESTINATION
        return response
    for name, value in answer.headers:
        response[name] = value
    for cookie in answer.cookies:
        response.set_cookie(
            cookie.name,
            cookie.value,
            max_age=cookie.max_age,
            httponly=True,
            secure=cookie.secure,
            samesite="None" if cookie.secure else "Lax",
        )
    return response


def offer_unavailable(request: HttpRequest) -> HttpResponse:
    """The network's last-resort landing page for clicks that have nowhere else to go."""
    return HttpResponse(
        "<!doctype html><title>Offer unavailable</title><h1>This offer is not available.</h1>",
        content_type="text/html",
    )
