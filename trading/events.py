"""Trading events, published only after the transaction that made them commits.

`trading_events_committed` is a plain Django signal, sent once per committed transaction with
all its events: the realtime layer (WebSocket streams) and anything else that wants to know
connects a receiver. Nothing is sent for rolled-back work, because `send_after_commit` hands
the events to `transaction.on_commit`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.dispatch import Signal

from marketdata.candles import candle_json
from portal import rawsql
from portal.decimals import amount_text
from trading.choices import Side
from trading.models import TradingAccount

#: Sent once per committed transaction with all its events, `events=[TradingEvent, …]` (the
#: WebSocket publisher sends them as one batch per instrument and per account).
trading_events_committed = Signal()


@dataclass(frozen=True)
class TradingEvent:
    """`kind` is a stream's kind: public "trades" (a transaction's tape), "candles" and
    "book" of `symbol`, or private "order", "fill" and "balance" of `account_id`. `seq`
    numbers the event in its stream (ADR 0006); `data` is JSON-ready."""

    kind: str
    data: dict[str, Any]
    account_id: int | None = None
    symbol: str = ""
    seq: int = 0


#: The private streams, by the kind of event they carry, and their counters on the account.
PRIVATE_STREAMS = {"order": "orders", "fill": "fills", "balance": "balances"}
PRIVATE_ORDER = tuple(PRIVATE_STREAMS.values())
_PRIVATE_COUNTERS = tuple(f"{stream}_seq" for stream in PRIVATE_ORDER)


def _json_ready(value: dict[str, Any]) -> dict[str, Any]:
    encoder = DjangoJSONEncoder()
    return {
        key: (encoder.default(item) if not isinstance(item, str | int | bool | type(None)) else item)
        for key, item in value.items()
    }


def publish_after_commit(events: Iterable[TradingEvent]) -> None:
    """Number `events`' private messages now, in the caller's transaction, and send every
    event once it commits."""
    pending = list(events)
    if pending:
        send_after_commit(private_seq_issue(pending)())


def send_after_commit(events: list[TradingEvent]) -> None:
    """Send `events` (already numbered) once the transaction commits; nothing if it rolls back."""
    if not events:
        return

    def send() -> None:
        trading_events_committed.send(sender=TradingEvent, events=events)

    transaction.on_commit(send, robust=True)


def private_seq_issue(events: list[TradingEvent]) -> Callable[[], list[TradingEvent]]:
    """Issue the numbering of `events`' private messages (inside a pipeline, or at once): per
    account, one `UPDATE … RETURNING` adds each stream's message count to its counter, in
    account id order (a global order, so two transactions never wait on each other in a
    cycle). The returned function gives `events` with their `seq` set. The private events of
    an account nobody owns (the venue's fee account) are dropped: nobody may subscribe to
    them, and its row is not made a point every trade has to lock."""
    counts: dict[int, list[int]] = {}
    for event in events:
        if event.kind in PRIVATE_STREAMS and event.account_id is not None:
            counts.setdefault(event.account_id, [0, 0, 0])[_stream_index(event.kind)] += 1
    if not counts:
        return lambda: events
    issued = {
        account_id: rawsql.issue(_private_seq_sql(), [*counts[account_id], account_id]) for account_id in sorted(counts)
    }

    def numbered() -> list[TradingEvent]:
        last = {account_id: pending.fetchone() for account_id, pending in issued.items()}
        next_seq = {
            account_id: [top - count + 1 for top, count in zip(row, counts[account_id], strict=True)]
            for account_id, row in last.items()
            if row is not None
        }
        result = []
        for event in events:
            if event.kind not in PRIVATE_STREAMS:
                result.append(event)
            elif event.account_id in next_seq:
                counters = next_seq[event.account_id]
                index = _stream_index(event.kind)
                result.append(dataclasses.replace(event, seq=counters[index]))
                counters[index] += 1
        return result

    return numbered


def _stream_index(kind: str) -> int:
    return PRIVATE_ORDER.index(PRIVATE_STREAMS[kind])


@functools.cache
def _private_seq_sql() -> str:
    q = rawsql.quote
    added = ", ".join(f"{q(name)} = {q(name)} + %s" for name in _PRIVATE_COUNTERS)
    returned = ", ".join(q(name) for name in _PRIVATE_COUNTERS)
    return (
        f"UPDATE {q(TradingAccount._meta.db_table)} SET {added} "  # noqa: S608 - names only
        f"WHERE {q('id')} = %s AND {q('owner_id')} IS NOT NULL RETURNING {returned}"
    )


def order_event(order) -> TradingEvent:
    return TradingEvent(
        kind="order",
        account_id=order.account_id,
        symbol=order.instrument.symbol,
        data=_json_ready(
            {
                "id": order.pk,
                "account_id": order.account_id,
                "client_order_id": order.client_order_id,
                "symbol": order.instrument.symbol,
                "side": order.side,
                "type": order.type,
                "time_in_force": order.time_in_force,
                "status": order.status,
                "price": order.price,
                "stop_price": order.stop_price,
                "quantity": order.quantity,
                "quote_quantity": order.quote_quantity,
                "executed_qty": order.executed_qty,
                "executed_quote": order.executed_quote,
                "reject_reason": order.reject_reason,
                "expire_reason": order.expire_reason,
                "updated_at": order.updated_at,
            }
        ),
    )


def trade_json(trade, *, symbol: str) -> dict[str, Any]:
    """One trade as the public tape shows it."""
    return _json_ready(
        {
            "id": trade.pk,
            "symbol": symbol,
            "price": trade.price,
            "quantity": trade.quantity,
            "quote_quantity": trade.quote_quantity,
            "aggressor_side": trade.aggressor_side,
            "maker_order_id": trade.maker_order_id,
            "taker_order_id": trade.taker_order_id,
            "executed_at": trade.executed_at,
        }
    )


def fill_events(trade, *, symbol: str, quote_asset: str) -> list[TradingEvent]:
    """The trade as each of its two accounts sees it: its order, side, role, fee and
    realized P&L."""
    taker_side = trade.aggressor_side
    maker_side = Side.SELL if taker_side == Side.BUY else Side.BUY
    sides = (
        (trade.maker_account_id, trade.maker_order_id, maker_side, "MAKER", trade.maker_fee, trade.maker_realized_pnl),
        (trade.taker_account_id, trade.taker_order_id, taker_side, "TAKER", trade.taker_fee, trade.taker_realized_pnl),
    )
    return [
        TradingEvent(
            kind="fill",
            account_id=account_id,
            symbol=symbol,
            data=_json_ready(
                {
                    "trade_id": trade.pk,
                    "account_id": account_id,
                    "order_id": order_id,
                    "symbol": symbol,
                    "side": side,
                    "role": role,
                    "price": trade.price,
                    "quantity": trade.quantity,
                    "quote_quantity": trade.quote_quantity,
                    "fee": fee,
                    "fee_asset": quote_asset,
                    "realized_pnl": realized_pnl,
                    "executed_at": trade.executed_at,
                }
            ),
        )
        for account_id, order_id, side, role, fee, realized_pnl in sides
    ]


def trades_event(trades: list[dict[str, Any]], *, symbol: str, seq: int) -> TradingEvent:
    """The public tape message of one transaction: its trades (`trade_json`) in order,
    numbered by the instrument's `tape_seq` (gap-free, in commit order; ADR 0006)."""
    return TradingEvent(kind="trades", symbol=symbol, seq=seq, data={"trades": trades})


def candles_event(candles: dict, *, symbol: str, seq: int) -> TradingEvent:
    """The candles one transaction's trades changed, as written (one per interval), rendered
    as the REST API renders candles; numbered like the tape (`tape_seq`): every transaction
    that trades changes exactly one candle of each interval, so each candle stream is
    gap-free too."""
    return TradingEvent(
        kind="candles",
        symbol=symbol,
        seq=seq,
        data={
            "candles": {
                interval: candle_json(open_time, interval, bar) for (interval, open_time), bar in candles.items()
            },
        },
    )


def book_event(level_sizes: dict[tuple[str, Decimal], Decimal], *, symbol: str, seq: int) -> TradingEvent:
    """The book diff of one transaction: the new size of each level it changed (0: the level
    is gone), numbered by the instrument's `book_seq` (gap-free, in commit order; ADR 0006).
    Bids best (highest) first, asks best (lowest) first, as `[price, size]` pairs."""
    bids = sorted((price, size) for (side, price), size in level_sizes.items() if side == Side.BUY)
    asks = sorted((price, size) for (side, price), size in level_sizes.items() if side == Side.SELL)
    return TradingEvent(
        kind="book", symbol=symbol, seq=seq, data={"bids": levels_json(reversed(bids)), "asks": levels_json(asks)}
    )


def levels_json(levels: Iterable[tuple[Decimal, Decimal]]) -> list[list[str]]:
    """Book levels as the book stream writes them: `[price, size]` as amount strings."""
    return [[amount_text(price), amount_text(size)] for price, size in levels]


def balance_event(*, account_id: int, asset_code: str, free, locked) -> TradingEvent:
    return TradingEvent(
        kind="balance",
        account_id=account_id,
        data=_json_ready({"account_id": account_id, "asset": asset_code, "free": free, "locked": locked}),
    )
