from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.common.net import client_ip
from apps.conversions import reversal, services
from apps.conversions.models import PostbackResult
from apps.conversions.params import LOGGED_HEADERS, postback_params_parse


def raw_query_string(meta: Mapping[str, object]) -> str:
    """The query string exactly as sent, for HMAC signatures. WSGI hands it over as latin-1
    (PEP 3333); the bytes are recovered and read as UTF-8, any invalid byte kept as a surrogate
    (so the signature is still computed over the very bytes sent)."""
    value = str(meta.get("QUERY_STRING", ""))
    try:
        raw = value.encode("iso-8859-1")
    except UnicodeEncodeError:  # not a WSGI string (ASGI decodes it as UTF-8)
        raw = value.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", "surrogateescape")


def inbound_request(
    request: HttpRequest, *, body: bytes, headers: tuple[str, ...] = LOGGED_HEADERS
) -> services.InboundRequest:
    """What the security checks and the debugger need of the HTTP request: the raw query string
    and body (a signature covers them as sent) and the relevant headers, lower-case names."""
    return services.InboundRequest(
        method=request.method or "GET",
        path=request.path,
        query_string=raw_query_string(request.META),
        headers={name: request.headers[name] for name in headers if name in request.headers},
        body=body,
    )


def _request_body(request: HttpRequest) -> bytes:
    """The raw POST body, read before any parsing (which would consume it), so a signature can
    be checked over it. Raises RequestDataTooBig over the limit."""
    if request.method != "POST":
        return b""
    # Django's own check leaves out multipart file parts, which it would stream to memory and
    # disk: a postback has no use for files, so the whole body is held to the limit.
    if _content_length(request) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise RequestDataTooBig("postback body over DATA_UPLOAD_MAX_MEMORY_SIZE")
    return request.body


def _request_params(request: HttpRequest, body: bytes) -> dict[str, str]:
    """Query string, then form or JSON body (body wins). Raises ValueError on a bad body."""
    params = {key: request.GET.get(key, "") for key in request.GET}
    if request.method == "POST":
        content_type = request.content_type or ""
        if content_type == "application/json":
            # Numbers and NaN/Infinity stay the text that was sent: an amount never passes
            # through a float, and a non-finite one is refused as invalid_amount, not guessed at.
            parsed = json.loads(body or b"{}", parse_float=str, parse_constant=str)
            if not isinstance(parsed, dict):
                raise ValueError("body is not a JSON object")
            params.update(
                {str(k): str(v) for k, v in parsed.items() if isinstance(v, str | int | float)}
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


def request_log_unparsed(
    request: HttpRequest, *, ip: str | None, body: bytes, reason: str, status: int
) -> None:
    """A call we could not even parse still goes to the debugger log (query string only, and
    the body if it was read)."""
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
        request=inbound_request(request, body=body),
    )


def _handle(
    request: HttpRequest, process: Callable[..., services.PostbackDecision]
) -> JsonResponse:
    """Parse the request (query string, then form or JSON body), hand it to `process`, answer its
    decision as JSON; what cannot be parsed is refused and still logged."""
    ip = client_ip(request)
    body = b""
    try:
        body = _request_body(request)
        raw = _request_params(request, body)
    except RequestDataTooBig:
        request_log_unparsed(request, ip=ip, body=b"", reason="body_too_large", status=413)
        return _reject("body_too_large", 413)
    except (SuspiciousOperation, ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack (a few KB of "[").
        request_log_unparsed(request, ip=ip, body=body, reason="malformed_request", status=400)
        return _reject("malformed_request", 400)
    decision = process(
        raw=raw,
        request_ip=ip,
        method=request.method or "GET",
        path=request.path,
        now=timezone.now(),
        request=inbound_request(request, body=body),
    )
    return JsonResponse(decision.as_json(), status=decision.http_status)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def postback(request: HttpRequest) -> JsonResponse:
    """`GET|POST /postback` (and HasOffers' `/aff_lsr`, `/aff_goal`): the advertiser reports."""
    return _handle(request, services.postback_process)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def postback_reversal(request: HttpRequest) -> JsonResponse:
    """`GET|POST /postback/reversal`: the advertiser takes a conversion back."""
    return _handle(request, reversal.reversal_process)
