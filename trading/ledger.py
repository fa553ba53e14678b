"""Moving money: every balance change becomes a ledger entry, applied with a guarded UPDATE.

Changes are collected first and applied together, one row at a time in (account, asset)
order, so two transactions touching the same balances always lock them in the same order
and never deadlock each other. Each UPDATE adds the net delta only if free and locked stay
non-negative (no read-modify-write); a refused row raises `InsufficientBalance` and the
caller's transaction rolls back. A change that only adds is an upsert: an account's first
receipt of an asset creates its balance row in the same statement, in the same lock order.
See docs/adr/0004-engine-locking-and-money-movement.md.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from portal import rawsql
from portal.decimals import ZERO
from portal.errors import DomainError
from trading.models import Balance, LedgerEntry


class InsufficientBalance(DomainError):
    def __init__(self, *, account_id: int, asset_id: int):
        super().__init__("INSUFFICIENT_BALANCE", "The account's free balance does not cover this.", status=422)
        self.account_id = account_id
        self.asset_id = asset_id


@dataclass
class BalanceChange:
    account_id: int
    asset_id: int
    kind: str
    free_delta: Decimal = ZERO
    locked_delta: Decimal = ZERO
    reason: str = ""
    order: Any = None
    trade: Any = None


@dataclass
class AppliedBalance:
    account_id: int
    asset_id: int
    free: Decimal
    locked: Decimal


@dataclass
class LedgerBatch:
    """Balance changes of one transaction, applied once by `apply()` (or in two steps,
    `apply_issue()` then `PendingBalances.collect()`, to share round trips with other writes)."""

    changes: list[BalanceChange] = field(default_factory=list)

    def add(self, change: BalanceChange) -> None:
        if change.free_delta or change.locked_delta:
            self.changes.append(change)

    def pending_free(self, account_id: int, asset_id: int) -> Decimal:
        """What this batch will add to (or take from) a free balance when it is applied: a
        check made before then must count it (a cancel-replace spends what the old order held)."""
        return sum((c.free_delta for c in self.changes if c.account_id == account_id and c.asset_id == asset_id), ZERO)

    def apply(self) -> list[AppliedBalance]:
        changes, self.changes = self.changes, []
        return balance_changes_apply(changes)

    def apply_issue(self) -> PendingBalances:
        pending = balance_changes_issue(self.changes)
        self.changes = []
        return pending


@functools.cache
def _guarded_update_sql() -> str:
    table = connection.ops.quote_name(Balance._meta.db_table)
    return (
        f"UPDATE {table} SET free = free + %s, locked = locked + %s, updated_at = %s "  # noqa: S608 - names only
        "WHERE account_id = %s AND asset_id = %s AND free + %s >= 0 AND locked + %s >= 0 "
        "RETURNING free, locked"
    )


def balance_changes_apply(changes: list[BalanceChange]) -> list[AppliedBalance]:
    """Apply `changes` inside the caller's transaction and write their ledger entries.

    Returns the resulting balance of every touched (account, asset).
    """
    pending = balance_changes_issue(changes)
    applied = pending.collect()
    pending.entries_issue()()
    return applied


@dataclass
class PendingBalances:
    """Guarded UPDATEs issued (possibly inside a `rawsql.pipeline()`), not read yet."""

    changes: list[BalanceChange]
    net: dict[tuple[int, int], tuple[Decimal, Decimal]]
    issued: dict[tuple[int, int], rawsql.Pending]
    now: Any
    finals: dict[tuple[int, int], tuple[Decimal, Decimal]] = field(default_factory=dict)

    def collect(self) -> list[AppliedBalance]:
        """Read the new balances; raises `InsufficientBalance` for the first refused row."""
        for key in sorted(self.net):
            if key not in self.finals:
                row = self.issued[key].fetchone()
                if row is None:
                    raise InsufficientBalance(account_id=key[0], asset_id=key[1])
                self.finals[key] = (Decimal(row[0]), Decimal(row[1]))
        return [AppliedBalance(key[0], key[1], free, locked) for key, (free, locked) in self.finals.items()]

    def entries_issue(self):
        """Issue the INSERT of one ledger entry per change (after `collect`)."""
        return _entries_issue(self.changes, self.finals)


def balance_changes_issue(changes: list[BalanceChange]) -> PendingBalances:
    """Issue one guarded UPDATE per touched (account, asset), in (account, asset) order."""
    net: dict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for change in changes:
        totals = net[(change.account_id, change.asset_id)]
        totals[0] += change.free_delta
        totals[1] += change.locked_delta
    pending = PendingBalances(
        changes=changes, net={key: (v[0], v[1]) for key, v in net.items()}, issued={}, now=timezone.now()
    )
    for key in sorted(pending.net):
        free_delta, locked_delta = pending.net[key]
        if connection.vendor != "postgresql":
            pending.finals[key] = _apply_one_serialized(key[0], key[1], free_delta, locked_delta)
        else:
            pending.issued[key] = _guarded_update(key, free_delta, locked_delta, pending.now)
    return pending


def _guarded_update(key: tuple[int, int], free_delta: Decimal, locked_delta: Decimal, now) -> rawsql.Pending:
    """A change that only adds creates the row if there is none yet (an account's first
    receipt of an asset), in the same statement and so in the same (sorted) lock order; a
    change that takes needs the row and enough in it."""
    account_id, asset_id = key
    if free_delta >= 0 and locked_delta >= 0:
        return rawsql.issue(_credit_upsert_sql(), [account_id, asset_id, free_delta, locked_delta, now])
    params = [free_delta, locked_delta, now, account_id, asset_id, free_delta, locked_delta]
    return rawsql.issue(_guarded_update_sql(), params)


@functools.cache
def _credit_upsert_sql() -> str:
    table = connection.ops.quote_name(Balance._meta.db_table)
    return (
        f"INSERT INTO {table} AS b (account_id, asset_id, free, locked, updated_at) "  # noqa: S608 - names only
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_id, asset_id) DO UPDATE "
        "SET free = b.free + EXCLUDED.free, locked = b.locked + EXCLUDED.locked, updated_at = EXCLUDED.updated_at "
        "RETURNING free, locked"
    )


def _apply_one_serialized(account_id: int, asset_id: int, free_delta: Decimal, locked_delta: Decimal):
    """SQLite (embedded mode): the IMMEDIATE transaction already holds the database's only write
    lock, so read, add in Decimal and write is safe there; SQLite's own arithmetic on decimal
    columns is floating point and would drift."""
    balance = Balance.objects.filter(account_id=account_id, asset_id=asset_id).first()
    if balance is None:
        balance = Balance(account_id=account_id, asset_id=asset_id)
    free, locked = balance.free + free_delta, balance.locked + locked_delta
    if free < 0 or locked < 0:
        raise InsufficientBalance(account_id=account_id, asset_id=asset_id)
    balance.free, balance.locked = free, locked
    balance.save()
    return free, locked


def _entries_issue(changes: list[BalanceChange], finals: dict[tuple[int, int], tuple[Decimal, Decimal]]):
    """One entry per change, each with the balance right after it (walked back from the final)."""
    running = {key: list(value) for key, value in finals.items()}
    entries: list[LedgerEntry] = []
    for change in reversed(changes):
        key = (change.account_id, change.asset_id)
        free_after, locked_after = running[key]
        entries.append(
            LedgerEntry(
                account_id=change.account_id,
                asset_id=change.asset_id,
                kind=change.kind,
                free_delta=change.free_delta,
                locked_delta=change.locked_delta,
                free_after=free_after,
                locked_after=locked_after,
                reason=change.reason[:255],
                order_id=change.order.pk if change.order is not None else None,
                trade_id=change.trade.pk if change.trade is not None else None,
            )
        )
        running[key] = [free_after - change.free_delta, locked_after - change.locked_delta]
    entries.reverse()
    return rawsql.insert_issue(entries)
