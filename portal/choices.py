"""Enumerations of identity & access: roles and API key scopes."""

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    TRADER = "trader", "Trader"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


#: Roles from weakest to strongest; a role includes every right of the roles before it.
ROLE_ORDER: list[str] = [Role.VIEWER, Role.TRADER, Role.OPERATOR, Role.ADMIN]


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read"
    TRADE = "trade", "Trade (writes; implies read)"
