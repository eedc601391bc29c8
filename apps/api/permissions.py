from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from apps.accounts.models import Role, User
from apps.partners.models import Affiliate


class _RolePermission(BasePermission):
    role: Role
    message = "This endpoint is not for your account type."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "role", None) == self.role)


class IsAffiliate(_RolePermission):
    role = Role.AFFILIATE


class IsAdvertiser(_RolePermission):
    role = Role.ADVERTISER


class IsNetworkStaff(_RolePermission):
    role = Role.STAFF


def _account_user(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user


def affiliate_of(request: Request) -> Affiliate:
    """The caller's affiliate account; the view's permission class has checked the role."""
    affiliate = _account_user(request).affiliate
    if affiliate is None:
        raise PermissionDenied()
    return affiliate


def advertiser_id_of(request: Request) -> int:
    advertiser_id = _account_user(request).advertiser_id
    if advertiser_id is None:
        raise PermissionDenied()
    return int(advertiser_id)
