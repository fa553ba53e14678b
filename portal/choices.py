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


class JobKind(models.TextChoices):
    """What a job does; each kind has a task (its queue) and a runner (ADR 0007)."""

    VAR = "var", "Value at Risk"
    REPORT = "report", "Report"
    EXPORT = "export", "Export"
    RECONCILE = "reconcile", "Reconciliation"
    BACKTEST = "backtest", "Backtest"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


#: A job in one of these states never runs again.
JOB_FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
