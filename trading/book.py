"""The book's price levels as the `book.<SYMBOL>` stream shows them (DESIGN §8, ADR 0006).

A level is a side and a price; its size is the remaining quantity of the orders resting
there. A transaction that changes the book knows which levels it touched (`levels_touched`),
reads their new sizes in its flush's first round trip, after its order writes
(`level_sizes_issue`), and publishes them as one diff numbered by `Instrument.book_seq`. A
size of zero removes the level.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from portal import rawsql
from portal.decimals import AMOUNT_UNIT, ZERO
from trading.choices import OPEN_STATUSES
from trading.models import Order

Level = tuple[str, Decimal]


def is_resting(order: Order) -> bool:
    """The order rests in the book: open, working (a stop order waits outside it) and priced."""
    return order.status in OPEN_STATUSES and order.is_working and order.price is not None


def levels_touched(orders: Iterable[Order], *, resting_before: set[int]) -> set[Level]:
    """The levels whose size `orders` (the ones a transaction wrote) may have changed: where
    each rested before (`resting_before`: their ids) or rests now."""
    return {(order.side, order.price) for order in orders if order.pk in resting_before or is_resting(order)}


def level_sizes_issue(instrument_id: int, levels: set[Level]) -> Callable[[], dict[Level, Decimal]]:
    """Issue the read of `levels`' sizes (inside the flush's pipeline, after the order writes):
    one grouped sum over the book index; the returned function gives each level's size once
    the pipeline ended."""
    if not levels:
        return dict
    keys = sorted(levels)
    pending = rawsql.issue(_levels_sql(len(keys)), [instrument_id, *(value for level in keys for value in level)])

    def sizes() -> dict[Level, Decimal]:
        found = dict.fromkeys(keys, ZERO)
        for side, price, size in pending.fetchall():
            found[(side, _decimal(price))] = _decimal(size)
        return found

    return sizes


def _decimal(value: Any) -> Decimal:
    """A sum or price as the ORM reads it: PostgreSQL gives Decimal; SQLite a float (its
    decimals are binary floats: 15 significant digits, as everywhere on SQLite)."""
    return value if isinstance(value, Decimal) else Decimal(repr(value)).quantize(AMOUNT_UNIT)


@functools.cache
def _levels_sql(levels: int) -> str:
    q = rawsql.quote
    statuses = ", ".join(f"'{status}'" for status in OPEN_STATUSES)
    match = " OR ".join([f"({q('side')} = %s AND {q('price')} = %s)"] * levels)
    return (
        f"SELECT {q('side')}, {q('price')}, SUM({q('quantity')} - {q('executed_qty')}) "  # noqa: S608 - names only
        f"FROM {q(Order._meta.db_table)} "
        f"WHERE {q('instrument_id')} = %s AND {q('status')} IN ({statuses}) AND {q('is_working')} AND ({match}) "
        f"GROUP BY {q('side')}, {q('price')}"
    )
