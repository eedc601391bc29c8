from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.http.request import HttpHeaders
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.common.net import client_ip_from_meta, query_params, raw_query_string
from apps.conversions import reversal, services
from apps.conversions.models import PostbackResult
from apps.conversions.params import LOGGED_HEADERS, postback_params_parse


def inbound_request(
    request: HttpRequest, *, body: bytes, headers: tuple[str, ...] = LOGGED_HEADERS
) -> services.InboundRequest:
    return inbound_request_from_meta(request.META, path=request.path, body=body, headers=headers)


def inbound_request_from_meta(
    meta: Mapping[str, Any], *, path: str, body: bytes, headers: tuple[str, ...] = LOGGED_HEADERS
) -> services.InboundRequest:
    """What the security checks and the debugger need of the HTTP request (a WSGI environ):
    the raw query string and body (a signature covers them as sent) and the relevant headers,
    lower-case names."""
    sent = HttpHeaders(meta)
    return services.InboundRequest(
        method=str(meta.get("REQUEST_METHOD") or "GET"),
        path=path,
        query_string=raw_query_string(meta),
        headers={name: sent[name] for name in headers if name in sent},
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
                {
                    _utf8(str(k)): _utf8(str(v))
                    for k, v in parsed.items()
                    if isinstance(v, str | int | float)
                }
            )
        else:
            params.update({key: request.POST.get(key, "") for key in request.POST})
    return params


def _utf8(text: str) -> str:
    """JSON may carry a lone surrogate ("\\ud800"), which no UTF-8 column or hash can take:
    UnicodeEncodeError (a ValueError), so the call is refused as malformed."""
    text.encode()
    return text


def _content_length(request: HttpRequest) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def request_log_unparsed(
    request: HttpRequest, *, ip: str | None, body: bytes, reason: str, status: int
) -> None:
    meta_log_unparsed(
        request.META, path=request.path, ip=ip, body=body, reason=reason, status=status
    )


def meta_log_unparsed(
    meta: Mapping[str, Any], *, path: str, ip: str | None, body: bytes, reason: str, status: int
) -> None:
    """A call we could not even parse still goes to the debugger log (query string only, and
    the body if it was read)."""
    try:
        query = query_params(meta)
    except ValueError:
        query = {}
    services.postback_log_write(
        params=postback_params_parse(query),
        raw=query,
        request_ip=ip,
        method=str(meta.get("REQUEST_METHOD") or "GET"),
        path=path,
        decision=services.PostbackDecision(PostbackResult.REJECTED, status, reason=reason),
        request=inbound_request_from_meta(meta, path=path, body=body),
    )


Process = Callable[..., services.PostbackDecision]


def postback_answer(
    process: Process,
    *,
    meta: Mapping[str, Any],
    path: str,
    read_body: Callable[[], bytes],
    parse: Callable[[bytes], dict[str, str]],
) -> tuple[int, dict[str, object]]:
    """One postback call, from the WSGI environ: `read_body` gives the raw body, `parse` the
    parameters (query string, then form or JSON body); `process` decides; the answer is its JSON
    and HTTP status. What cannot be read is refused and still logged. Shared by the Django views
    and the WSGI fast path (config/wsgi.py)."""
    ip = client_ip_from_meta(meta)
    body = b""
    try:
        body = read_body()
        raw = parse(body)
    except RequestDataTooBig:
        meta_log_unparsed(meta, path=path, ip=ip, body=b"", reason="body_too_large", status=413)
        return 413, answer_without_conversion("body_too_large")
    except (SuspiciousOperation, BadRequest, MultiPartParserError, ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack (a few KB of "[").
        # BadRequest, MultiPartParserError: a form body with a boundary or in a charset Django
        # cannot (or will not) read.
        meta_log_unparsed(meta, path=path, ip=ip, body=body, reason="malformed_request", status=400)
        return 400, answer_without_conversion("malformed_request")
    decision = process(
        raw=raw,
        request_ip=ip,
        method=str(meta.get("REQUEST_METHOD") or "GET"),
        path=path,
        now=timezone.now(),
        request=inbound_request_from_meta(meta, path=path, body=body),
    )
    return decision.http_status, decision.as_json()


def answer_without_conversion(
    reason: str, result: str = PostbackResult.REJECTED.value
) -> dict[str, object]:
    """The JSON answer of a call that recorded nothing: refused, or (result "error") a fault of
    ours."""
    return {"result": result, "conversion_id": None, "status": None, "reason": reason}


def _handle(request: HttpRequest, process: Process) -> JsonResponse:
    status, payload = postback_answer(
        process,
        meta=request.META,
        path=request.path,
        read_body=lambda: _request_body(request),
        parse=lambda body: _request_params(request, body),
    )
    return JsonResponse(payload, status=status)


# The processes of the postback endpoints, by path (the WSGI fast path serves these for GET).
POSTBACK_PROCESSES: dict[str, Process] = {
    "/postback": services.postback_process,
    "/aff_lsr": services.postback_process,
    "/aff_goal": services.postback_process,
    "/postback/reversal": reversal.reversal_process,
}


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
