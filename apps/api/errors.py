"""Every API error is JSON with a stable `code` (and `detail` for people)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.common.errors import DomainError


class ApiError(exceptions.APIException):
    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, code: str, detail: str = "", status_code: int = 400):
        self.status_code = status_code
        super().__init__(detail=detail or code.replace("_", " "), code=code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # A rate-limited service says when to come back (FireRateLimited and the like).
    retry_after = getattr(exc, "retry_after", None)
    # Map the non-DRF errors here, not in DRF's handler, so they get a `code` too.
    if isinstance(exc, DomainError):
        exc = ApiError(exc.code, exc.message, exc.http_status)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"code": "invalid", "detail": "Invalid input.", "errors": exc.detail}
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        response.data = {"code": code, "detail": str(exc.detail)}
    if isinstance(retry_after, int):
        response["Retry-After"] = str(retry_after)
    return response
