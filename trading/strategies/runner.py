"""The live runner (ADR 0008): drives the running strategies from the venue's bars, their own
fills and timers, through the engine's services. `manage.py run_strategies` runs it as a process
(a docker-compose service); embedded mode runs it in a thread of the web process.

Every tick (TICK_SECONDS), for each running strategy this process holds (one advisory lock per
strategy: two runners never drive the same one):

1. its fills since the last trade seen, in order (`on_fill`, the step's time the trade's);
2. each bar of its interval closed since the last one it was given (`on_bar`, the step's time
   the bar's close);
3. its timer, when due (`on_timer`, the step's time the timer's slot);

after each step the fills its orders got at once (a market order) reach the strategy before the
next step, and its state, its holding and its cursors are saved in one UPDATE that only lands
while the strategy still runs the same run (a stop meanwhile wins).

Crash-safety: an order's client order id is `st<strategy>r<run>-<step time>-<n>` (or a tag the
strategy gives). A runner that died after placing a step's orders but before saving the step
runs the step again after its restart: the indicators rebuilt from the same bars, the same state
and the same step time name the same orders, and an order whose client id the account has
already is taken as placed, never sent twice.

A strategy whose code raises is stopped with status error and the traceback in its log (its
open orders canceled); the others go on. A database error ends the tick for that strategy only;
it is reloaded at the next one (the replay above makes that safe).
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import structlog
from django.db import DatabaseError, connection, transaction

from marketdata.candles import INTERVAL_SECONDS
from marketdata.models import Candle
from portal.claims import AdvisoryClaims
from portal.errors import ConflictError
from trading.choices import OPEN_STATUSES, OrderStatus, OrderType, StrategyStatus, TimeInForce
from trading.models import Order, Strategy, StrategyLogLine, StrategyMark, Trade
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import order_cancel, order_place
from trading.strategies.base import Bar, Caps, Fill, Holding, Rules, StrategyContext, WorkingOrder
from trading.strategies.base import Strategy as StrategyCode
from trading.strategies.builtin import strategy_type_get
from trading.strategies.services import (
    strategy_actor,
    strategy_changed_note,
    strategy_fail,
    strategy_log,
    strategy_stop,
)

logger = structlog.get_logger("trading.strategies")

#: Seconds between two ticks.
TICK_SECONDS = 1.0
#: Bars given to a strategy in one tick at most (a runner that was down catches up over ticks).
BARS_PER_TICK = 500
#: Trades of the instrument read at once when looking for the strategy's fills.
TRADES_PER_READ = 5_000
#: Rounds of fills taken after a step (a fill's answer may fill at once, and so on).
_FILL_ROUNDS = 5
#: The advisory lock's first key: "TPst" (Tradeport strategies); the second is the strategy's id.
_LOCK_CLASS = 0x54507374


class LiveVenue(StrategyContext):
    """The live side of the context: orders go through `trading.services` as the strategy, on
    behalf of its owner; what the strategy logs goes to its log."""

    def __init__(self, strategy: Strategy):
        super().__init__(
            rules=Rules.of(strategy.instrument),
            caps=Caps(strategy.max_position, strategy.max_order_qty, strategy.max_daily_loss),
            prefix=f"st{strategy.pk}r{strategy.run}-",
        )
        self.strategy = strategy
        self.actor = strategy_actor(strategy)
        self.placed = 0

    def log(self, message: str) -> None:
        if not self.warming_up:
            strategy_log(self.strategy, message, level=StrategyLogLine.Level.WARNING)

    def _submit(self, order: WorkingOrder) -> bool:
        strategy = self.strategy
        existing = Order.objects.filter(account_id=strategy.account_id, client_order_id=order.ref).first()
        if existing is not None:  # placed before a restart: never twice
            if existing.status not in OPEN_STATUSES:
                self.orders.pop(order.ref, None)
            return existing.status != OrderStatus.REJECTED
        request = OrderRequest(
            side=order.side,
            type=OrderType.LIMIT if order.price is not None else OrderType.MARKET,
            quantity=order.quantity,
            price=order.price,
            time_in_force=TimeInForce.GTC if order.price is not None else "",
            client_order_id=order.ref,
        )
        try:
            placed = order_place(
                account=strategy.account,
                instrument=strategy.instrument,
                request=request,
                actor=self.actor,
                strategy_id=strategy.pk,
            )
        except OrderRejected as rejection:
            at = f" @ {order.price.normalize():f}" if order.price is not None else " at market"
            message = f"{order.side} {order.quantity.normalize():f}{at} rejected: {rejection.code}: {rejection}"
            strategy_log(strategy, message, level=StrategyLogLine.Level.WARNING)
            return False
        self.placed += 1
        if placed.status not in OPEN_STATUSES:
            self.orders.pop(order.ref, None)
        return True

    def _cancel(self, order: WorkingOrder) -> None:
        row = Order.objects.filter(
            account_id=self.strategy.account_id, client_order_id=order.ref, status__in=OPEN_STATUSES
        ).first()
        if row is None:
            return
        with contextlib.suppress(ConflictError):  # it filled or was canceled meanwhile
            order_cancel(order=row, actor=self.actor, reason="canceled by its strategy")


class StrategyDriver:
    """One running strategy in this process: its code, its venue, its cursors."""

    def __init__(self, strategy: Strategy, *, now: float):
        self.strategy = strategy
        self.run = strategy.run
        self.width = INTERVAL_SECONDS[strategy.interval]
        kind = strategy_type_get(strategy.kind)
        self.code: StrategyCode = kind(strategy.params, dict(strategy.state))
        self.venue = LiveVenue(strategy)
        self.venue.holding = Holding(
            position=strategy.position,
            average_price=strategy.average_price,
            realized_pnl=strategy.realized_pnl,
            fees=strategy.fees_paid,
        )
        cursor = dict(strategy.runner_state)
        self.last_trade_id: int = cursor.get("last_trade_id", _last_trade_id())
        if "day" in cursor:
            self.venue._day, self.venue.day_start_pnl = cursor["day"], Decimal(cursor["day_start_pnl"])
        self.last_bar_at = strategy.last_bar_at or self._latest_closed_bar(now)
        self.next_timer = 0.0
        self._reload_orders()
        self._warm_up()
        self.venue.begin_step(int(now))
        self.code.on_start(self.venue)
        self._save(mark=None)

    # -- a tick ---------------------------------------------------------------------------------

    def step(self, now: float) -> bool:
        """One tick; False when the strategy no longer runs here (stopped, finished, restarted).
        The fills a step's orders got at once (a market order) reach the strategy before the
        next step, and are saved with it."""
        if self._take_fills() and not self._save(mark=None):
            return False
        for bar_row in self._new_bars(now):
            bar = _bar(bar_row)
            closed = bar.time + self.width
            self.venue.begin_step(closed)
            self.venue.last_close = bar.close
            self.code.on_bar(self.venue, bar)
            self.last_bar_at = bar_row.open_time
            self._take_fills()
            if not self._save(mark=(closed, bar_row.close)):
                return False
        timer = self.code.timer_seconds
        if timer and now >= self.next_timer:
            slot = int(now // timer * timer)
            self.next_timer = slot + timer
            self.venue.begin_step(slot, "t")
            self.code.on_timer(self.venue)
            self._take_fills()
            if not self._save(mark=None):
                return False
        if self.code.is_finished(self.venue):
            strategy_stop(
                strategy=self.strategy, actor=self.venue.actor, reason="finished", status=StrategyStatus.FINISHED
            )
            return False
        return True

    def _take_fills(self) -> bool:
        """Give the strategy its new fills, and those its answers got at once (a few rounds at
        most); whether there were any."""
        taken = False
        for _ in range(_FILL_ROUNDS):
            fills = self._new_fills()
            if not fills:
                break
            taken = True
            for fill in fills:
                self.venue.begin_step(fill.time, "f")
                self.venue.record_fill(fill)
                self.code.on_fill(self.venue, fill)
        return taken

    def _new_fills(self) -> list[Fill]:
        """The strategy's fills among its instrument's trades after the cursor. An instrument's
        trades are written under its lock, so their ids commit in order: every trade up to the
        last one read has been seen, and the cursor moves to it whether it was ours or not (a
        quiet strategy reads only what traded since the last tick)."""
        pk = self.strategy.pk
        rows = (
            Trade.objects.filter(instrument_id=self.strategy.instrument_id, id__gt=self.last_trade_id)
            .order_by("id")
            .values_list(
                "id",
                "price",
                "quantity",
                "maker_fee",
                "taker_fee",
                "executed_at",
                "maker_order__strategy_id",
                "maker_order__client_order_id",
                "maker_order__side",
                "taker_order__strategy_id",
                "taker_order__client_order_id",
                "taker_order__side",
            )[:TRADES_PER_READ]
        )
        fills = []
        for row in rows:
            trade_id, price, quantity, maker_fee, taker_fee, at = row[:6]
            maker_strategy, maker_ref, maker_side, taker_strategy, taker_ref, taker_side = row[6:]
            if pk in (maker_strategy, taker_strategy):
                maker = maker_strategy == pk
                fills.append(
                    Fill(
                        ref=maker_ref if maker else taker_ref,
                        side=maker_side if maker else taker_side,
                        price=price,
                        quantity=quantity,
                        fee=maker_fee if maker else taker_fee,
                        time=int(at.timestamp()),
                    )
                )
            self.last_trade_id = trade_id
        return fills

    def _new_bars(self, now: float) -> list[Candle]:
        """Bars of the interval that closed since the last one given (a bucket with no trade
        has no bar)."""
        closed_by = datetime.fromtimestamp(now - self.width, tz=UTC)
        bars = Candle.objects.filter(
            instrument_id=self.strategy.instrument_id, interval=self.strategy.interval, open_time__lte=closed_by
        )
        if self.last_bar_at is not None:
            bars = bars.filter(open_time__gt=self.last_bar_at)
        return list(bars.order_by("open_time")[:BARS_PER_TICK])

    def _save(self, *, mark: tuple[int, Decimal] | None) -> bool:
        """The step's outcome, only while the strategy runs this run (False otherwise), and its
        message on the owner's `strategies` stream."""
        with transaction.atomic():
            return self._saved(mark)

    def _saved(self, mark: tuple[int, Decimal] | None) -> bool:
        holding = self.venue.holding
        fields = {
            "state": self.code.state,
            "runner_state": {
                "last_trade_id": self.last_trade_id,
                "day": self.venue._day,
                "day_start_pnl": str(self.venue.day_start_pnl),
            },
            "last_bar_at": self.last_bar_at,
            "position": holding.position,
            "average_price": holding.average_price,
            "realized_pnl": holding.realized_pnl,
            "fees_paid": holding.fees,
        }
        running = Strategy.objects.filter(pk=self.strategy.pk, status=StrategyStatus.RUNNING, run=self.run)
        saved = running.update(**fields)
        if not saved:
            return False
        for name, value in fields.items():
            setattr(self.strategy, name, value)
        strategy_changed_note(self.strategy)
        if mark is not None:
            at, price = mark
            StrategyMark.objects.update_or_create(
                strategy_id=self.strategy.pk,
                at=datetime.fromtimestamp(at, tz=UTC),
                defaults={
                    "position": holding.position,
                    "price": price,
                    "realized_pnl": holding.realized_pnl,
                    "pnl": holding.realized_pnl + holding.unrealized(price),
                },
            )
        return True

    # -- a (re)start ----------------------------------------------------------------------------

    def _latest_closed_bar(self, now: float) -> datetime | None:
        closed_by = datetime.fromtimestamp(now - self.width, tz=UTC)
        latest = (
            Candle.objects.filter(
                instrument_id=self.strategy.instrument_id, interval=self.strategy.interval, open_time__lte=closed_by
            )
            .order_by("-open_time")
            .values_list("open_time", flat=True)
            .first()
        )
        return latest

    def _reload_orders(self) -> None:
        """The strategy's open orders of this run, as working orders (after a restart)."""
        rows = Order.objects.filter(strategy_id=self.strategy.pk, status__in=OPEN_STATUSES).order_by("id")
        for row in rows:
            if row.client_order_id.startswith(self.venue.prefix) and row.quantity is not None:
                self.venue.orders[row.client_order_id] = WorkingOrder(
                    row.client_order_id,
                    row.side,
                    row.price if row.type != OrderType.MARKET else None,
                    row.quantity,
                    row.quantity - row.executed_qty,
                    int(row.created_at.timestamp()),
                    float(row.price) if row.type != OrderType.MARKET and row.price is not None else None,
                )

    def _warm_up(self) -> None:
        """The bars up to the last one given rebuild the indicators; no order leaves."""
        count = self.code.warmup_bars()
        if not count or self.last_bar_at is None:
            return
        rows = Candle.objects.filter(
            instrument_id=self.strategy.instrument_id, interval=self.strategy.interval, open_time__lte=self.last_bar_at
        ).order_by("-open_time")[:count]
        self.venue.warming_up = True
        try:
            for row in reversed(list(rows)):
                bar = _bar(row)
                self.venue.begin_step(bar.time + self.width)
                self.venue.last_close = bar.close
                self.code.on_bar(self.venue, bar)
        finally:
            self.venue.warming_up = False


class StrategyRunner:
    """Drives the running strategies no other runner drives."""

    def __init__(self) -> None:
        self.claims = AdvisoryClaims(_LOCK_CLASS, "strategies")
        self.drivers: dict[int, StrategyDriver] = {}

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        running = {
            strategy.pk: strategy
            for strategy in Strategy.objects.filter(status=StrategyStatus.RUNNING).select_related(
                "owner", "account", "instrument"
            )
        }
        for pk in list(self.drivers):
            if pk not in running or running[pk].run != self.drivers[pk].run:
                self._drop(pk)
        held = self.claims.claim(running)
        for pk in sorted(held & set(running)):
            self._drive(running[pk], now)

    def _drive(self, strategy: Strategy, now: float) -> None:
        pk = strategy.pk
        try:
            driver = self.drivers.get(pk)
            if driver is None:
                driver = self.drivers[pk] = StrategyDriver(strategy, now=now)
                logger.info("strategy_driven", strategy=pk, run=strategy.run, kind=strategy.kind)
            else:  # as they are now (an account disabled, an instrument halted meanwhile)
                driver.strategy.account, driver.strategy.instrument = strategy.account, strategy.instrument
            if not driver.step(now):
                self._drop(pk)
        except DatabaseError:
            logger.exception("strategy_tick_failed", strategy=pk)
            self._drop(pk)
            connection.close_if_unusable_or_obsolete()
        except Exception as error:  # noqa: BLE001 - the strategy's code raised: it stops, the others go on
            logger.warning("strategy_failed", strategy=pk, error=repr(error))
            self._drop(pk)
            strategy_fail(strategy=strategy, error=error)

    def _drop(self, pk: int) -> None:
        self.drivers.pop(pk, None)
        self.claims.let_go(pk)

    def run(self, *, stop: threading.Event, ticks: int | None = None) -> int:
        """Tick every TICK_SECONDS until `stop` is set (or `ticks` are done); the ticks run."""
        done = 0
        try:
            while not stop.is_set() and (ticks is None or done < ticks):
                started = time.monotonic()
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - e.g. the database went away: try again next tick
                    logger.exception("strategy_runner_tick_failed")
                    connection.close_if_unusable_or_obsolete()
                done += 1
                stop.wait(max(0.0, TICK_SECONDS - (time.monotonic() - started)))
        finally:
            self.claims.release()
        return done


_embedded = threading.Event()


def strategy_runner_start_embedded() -> None:
    """Embedded mode: the runner in a daemon thread of the ASGI process (once per process)."""
    if _embedded.is_set():
        return
    _embedded.set()

    def run() -> None:
        time.sleep(2)
        StrategyRunner().run(stop=threading.Event())

    threading.Thread(target=run, name="tradeport-strategies", daemon=True).start()
    logger.info("embedded_strategy_runner_started")


def _bar(row: Candle) -> Bar:
    prices = (float(row.open), float(row.high), float(row.low), float(row.close), float(row.volume))
    return Bar(int(row.open_time.timestamp()), *prices)


def _last_trade_id() -> int:
    return Trade.objects.order_by("-id").values_list("id", flat=True).first() or 0
