"""Role, API key scope and object permissions shared by every endpoint."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from portal.choices import ApiKeyScope, Role
from portal.models import ApiKey


class IsAuthenticatedWithScope(BasePermission):
    """Authenticated, with a role strong enough for the method, and, for API keys, the scope.

    A view sets `read_role` / `write_role` (defaults: viewer reads, trader writes).
    Reads need the key scope `read`, writes `trade`.
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not user or not user.is_authenticated:
            raise exceptions.NotAuthenticated("Authentication credentials were not provided.", code="not_authenticated")
        is_read = request.method in SAFE_METHODS
        needed_role = getattr(view, "read_role", Role.VIEWER) if is_read else getattr(view, "write_role", Role.TRADER)
        if not user.has_role_at_least(needed_role):
            raise exceptions.PermissionDenied(
                f"This action needs the {needed_role} role; you are {user.role or 'without a role'}.",
                code="role_forbidden",
            )
        if isinstance(request.auth, ApiKey):
            scope = ApiKeyScope.READ if is_read else ApiKeyScope.TRADE
            if not request.auth.has_scope(scope):
                raise exceptions.PermissionDenied(f"This API key lacks the '{scope}' scope.", code="api_key_scope")
        return True


class IsOwnerOrOperator(BasePermission):
    """Object permission: the object's owner (`view.owner_field`, default `user`), or an operator."""

    def has_object_permission(self, request, view, obj) -> bool:
        if request.user.has_role_at_least(Role.OPERATOR):
            return True
        owner_id = getattr(obj, f"{getattr(view, 'owner_field', 'user')}_id", None)
        if owner_id != request.user.pk:
            raise exceptions.NotFound("No such resource.")
        return True
