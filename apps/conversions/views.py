from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.common.net import client_ip
from apps.conversions import services
from apps.conversions.models import PostbackResult
from apps.conversions.params import postback_params_parse


def _request_params(request: HttpRequest) -> dict[str, str]:
    """Query string, then form or JSON body (body wins). Raises ValueError on a bad body."""
    params = {key: request.GET.get(key, "") for key in request.GET}
    if request.method == "POST":
        # Django's own check leaves out multipart file parts, which it would stream to memory
        # and disk: a postback has no use for files, so the whole body is held to the limit.
        if _content_length(request) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestDataTooBig("postback body over DATA_UPLOAD_MAX_MEMORY_SIZE")
        content_type = request.content_type or ""
        if content_type == "application/json":
            # Numbers and NaN/Infinity stay the text that was sent: an amount never passes
            # through a float, and a non-finite one is refused as invalid_amount, not guessed at.
            body = json.loads(request.body or b"{}", parse_float=str, parse_constant=str)
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
            params.update(
                {str(k): str(v) for k, v in body.items() if isinstance(v, str | int | float)}
            )
        else:
            params.update({key: request.POST.get(key, "") for key in request.POST})
    return params


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _reject(reason: str, http_status: int) -> JsonResponse:
    return JsonResponse(
        {
            "result": PostbackResult.REJECTED.value,
            "conversion_id": None,
            "status": None,
            "reason": reason,
        },
        status=http_status,
    )


def _reject_logged(request: HttpRequest, ip: str | None, reason: str, status: int) -> JsonResponse:
    """A call we could not even parse still goes to the debugger log (query string only)."""
    try:
        query = {key: request.GET.get(key, "") for key in request.GET}
    except SuspiciousOperation:
        query = {}
    services.postback_log_write(
        params=postback_params_parse(query),
        raw=query,
        request_ip=ip,
        method=request.method or "GET",
        path=request.path,
        decision=services.PostbackDecision(PostbackResult.REJECTED, status, reason=reason),
    )
    return _reject(reason, status)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def postback(request: HttpRequest) -> JsonResponse:
    """`GET|POST /postback` (and HasOffers' `/aff_lsr`, `/aff_goal`): the advertiser reports."""
    ip = client_ip(request)
    try:
        raw = _request_params(request)
    except RequestDataTooBig:
        return _reject_logged(request, ip, "body_too_large", 413)
    except (SuspiciousOperation, ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack (a few KB of "[").
        return _reject_logged(request, ip, "malformed_request", 400)
    decision = services.postback_process(
        raw=raw,
        request_ip=ip,
        method=request.method or "GET",
        path=request.path,
        now=timezone.now(),
    )
    return JsonResponse(decision.as_json(), status=decision.http_status)
