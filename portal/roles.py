"""Roles as groups with permissions: viewer < trader < operator < admin."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from portal.choices import ROLE_ORDER, Role

#: Django model permissions each role's group holds, on top of the weaker roles' ones.
#: Object-level rules (a trader sees only their own keys) live in selectors and API permissions.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.VIEWER: [],
    Role.TRADER: ["portal.view_apikey", "portal.add_apikey", "portal.change_apikey"],
    Role.OPERATOR: [
        "portal.view_user",
        "portal.change_user",
        "portal.delete_apikey",
        "auth.view_group",
        "audit.view_auditevent",
        "django_celery_beat.view_periodictask",
        "django_celery_beat.change_periodictask",
        "marketdata.view_venue",
        "marketdata.view_asset",
        "marketdata.view_instrument",
        "marketdata.add_instrument",
        "marketdata.change_instrument",
        "marketdata.view_instrumentstatuschange",
        "marketdata.view_candle",
        "trading.view_tradingaccount",
        "trading.add_tradingaccount",
        "trading.change_tradingaccount",
        "trading.view_order",
        "trading.change_order",
        "trading.view_trade",
        "trading.view_balance",
        "trading.view_position",
        "trading.view_ledgerentry",
        "trading.view_strategy",
        "trading.change_strategy",
        "trading.view_strategylogline",
        "trading.view_backtest",
        "trading.view_backtestfill",
        "riskmgmt.view_risklimit",
        "riskmgmt.add_risklimit",
        "riskmgmt.change_risklimit",
        "riskmgmt.delete_risklimit",
        "riskmgmt.view_killswitch",
        "riskmgmt.add_killswitch",
        "riskmgmt.change_killswitch",
    ],
    Role.ADMIN: ["*"],
}


def role_permission_codes(role: str) -> set[str]:
    """Every permission code of `role`, including those inherited from weaker roles."""
    codes: set[str] = set()
    for current in ROLE_ORDER[: ROLE_ORDER.index(role) + 1]:
        codes.update(ROLE_PERMISSIONS[current])
    return codes


@transaction.atomic
def roles_sync() -> None:
    """Create the role groups and give each exactly its permissions (idempotent)."""
    all_permissions = Permission.objects.select_related("content_type")
    by_code = {f"{p.content_type.app_label}.{p.codename}": p for p in all_permissions}
    for role in ROLE_ORDER:
        group, _ = Group.objects.get_or_create(name=role)
        codes = role_permission_codes(role)
        if "*" in codes:
            group.permissions.set(all_permissions)
        else:
            group.permissions.set([by_code[code] for code in sorted(codes) if code in by_code])


def roles_sync_on_migrate(*, using: str = "default", **kwargs) -> None:
    """After `migrate`: every app's permissions exist first (Django creates them app by app,
    portal's may come before audit's), then the role groups get theirs."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    roles_sync()
