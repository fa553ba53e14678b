"""Reads of risk state shared by several services."""

from __future__ import annotations

from django.db.models import Q

from riskmgmt.models import KillSwitch
from trading.models import TradingAccount


def kill_switch_engaged(*, account: TradingAccount) -> bool:
    """True while the venue's kill switch or the account's own is engaged."""
    return (
        KillSwitch.objects.filter(released_at__isnull=True)
        .filter(Q(account=account) | Q(account__isnull=True))
        .exists()
    )
