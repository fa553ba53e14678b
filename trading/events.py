"""Trading events, published only after the transaction that made them commits.

`trading_event` is a plain Django signal: the realtime layer (WebSocket streams) and anything
else that wants to know connects a receiver. Nothing is sent for rolled-back work, because
`publish_after_commit` hands the events to `transaction.on_commit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.dispatch import Signal

from marketdata.candles import candle_json

#: Sent once per event with `event=TradingEvent`.
trading_event = Signal()


@dataclass(frozen=True)
class TradingEvent:
    """`kind` is "order", "trade", "trades" (a transaction's tape), "candles" or "balance";
    `account_ids` whose private streams it belongs to (empty for public-only); `symbol` for
    instrument-scoped events; `data` is JSON-ready."""

    kind: str
    data: dict[str, Any]
    account_ids: tuple[int, ...] = ()
    symbol: str = ""
    public: bool = False


def _json_ready(value: dict[str, Any]) -> dict[str, Any]:
    encoder = DjangoJSONEncoder()
    return {
        key: (encoder.default(item) if not isinstance(item, str | int | bool | type(None)) else item)
        for key, item in value.items()
    }


def publish_after_commit(events: Iterable[TradingEvent]) -> None:
    pending = list(events)
    if not pending:
        return

    def send() -> None:
        for event in pending:
            trading_event.send(sender=TradingEvent, event=event)

    transaction.on_commit(send, robust=True)


def order_event(order) -> TradingEvent:
    return TradingEvent(
        kind="order",
        account_ids=(order.account_id,),
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


def trade_event(trade, *, symbol: str) -> TradingEvent:
    return TradingEvent(
        kind="trade",
        account_ids=(trade.maker_account_id, trade.taker_account_id),
        symbol=symbol,
        public=True,
        data=_json_ready(
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
        ),
    )


def trades_event(trade_events: list[TradingEvent], *, symbol: str, seq: int) -> TradingEvent:
    """The public tape message of one transaction: its trades (their `trade_event`s) in order,
    numbered by the instrument's `tape_seq` (gap-free, in commit order; ADR 0006)."""
    return TradingEvent(
        kind="trades",
        symbol=symbol,
        public=True,
        data={"seq": seq, "trades": [event.data for event in trade_events]},
    )


def candles_event(candles: dict, *, symbol: str, seq: int) -> TradingEvent:
    """The candles one transaction's trades changed, as written (one per interval), rendered
    as the REST API renders candles; numbered like the tape (`tape_seq`): every transaction
    that trades changes exactly one candle of each interval, so each candle stream is
    gap-free too."""
    return TradingEvent(
        kind="candles",
        symbol=symbol,
        public=True,
        data={
            "seq": seq,
            "candles": {
                interval: candle_json(open_time, interval, bar) for (interval, open_time), bar in candles.items()
            },
        },
    )


def balance_event(*, account_id: int, asset_code: str, free, locked) -> TradingEvent:
    return TradingEvent(
        kind="balance",
        account_ids=(account_id,),
        data=_json_ready({"account_id": account_id, "asset": asset_code, "free": free, "locked": locked}),
    )
