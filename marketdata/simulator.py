"""The market simulator: makes a sandbox venue move by itself (DESIGN §5, sandbox liquidity).

Per instrument, every step:

1. the reference price takes a step of a geometric random walk (yearly volatility and drift);
2. a market maker keeps a ladder of quotes around it, and requotes when the reference moved
   away from the ladder's centre or noise traders took half of its levels;
3. a noise trader sometimes sends a small market or limit order.

Every order goes through the engine's services, so risk checks, the ledger, audit and events
apply to the simulator exactly as to anyone. A trader short of funds is topped up by a
deposit, through the ledger.

Exactly one simulator drives an instrument at a time: a PostgreSQL advisory lock per
instrument, held by the simulator's connection (a lock file per database and instrument on
SQLite). A simulator that dies releases its locks with its connection; another one takes
over at its next claim. The simulator keeps no state that a restart would need: the
reference price, the book and the balances are in the database.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection

from marketdata.models import Instrument, InstrumentStatus
from portal.choices import Role
from portal.claims import AdvisoryClaims
from portal.decimals import floor_to
from portal.users import user_set_role
from trading.choices import OPEN_STATUSES, AccountKind, OrderType, Side, TimeInForce
from trading.models import Order, TradingAccount
from trading.order_rules import OrderRejected, OrderRequest
from trading.services import account_create, deposit_create, order_cancel, order_cancel_all, order_place

logger = structlog.get_logger("marketdata.simulator")

SIMULATOR_ACTOR = "simulator"
MAKER_USERNAME = "market-maker"
NOISE_USERNAME = "noise-trader"
#: A top-up deposit: this many times the order that lacked funds (small enough that balances
#: stay within the 15 significant digits embedded mode's SQLite keeps).
_TOP_UP_FACTOR = 20
#: A noise trader keeps at most this many resting orders per instrument (the oldest go).
_NOISE_RESTING_MAX = 6
_SECONDS_PER_YEAR = 365 * 24 * 3600
#: The advisory lock's first key: "TPsm" (Tradeport simulator); the second is the instrument's id.
_LOCK_CLASS = 0x5450736D


@dataclass(frozen=True)
class SimulatorSettings:
    step_seconds: float
    volatility: float
    drift: float
    maker_levels: int
    maker_step_bps: float
    maker_quote_notional: float
    maker_requote_bps: float
    noise_orders_per_minute: float
    noise_notional: float

    @classmethod
    def from_settings(cls) -> SimulatorSettings:
        return cls(
            step_seconds=settings.SIMULATOR_STEP_SECONDS,
            volatility=settings.SIMULATOR_VOLATILITY,
            drift=settings.SIMULATOR_DRIFT,
            maker_levels=settings.SIMULATOR_MAKER_LEVELS,
            maker_step_bps=settings.SIMULATOR_MAKER_STEP_BPS,
            maker_quote_notional=settings.SIMULATOR_MAKER_QUOTE_NOTIONAL,
            maker_requote_bps=settings.SIMULATOR_MAKER_REQUOTE_BPS,
            noise_orders_per_minute=settings.SIMULATOR_NOISE_ORDERS_PER_MINUTE,
            noise_notional=settings.SIMULATOR_NOISE_NOTIONAL,
        )


def reference_price_set(*, instrument: Instrument, price: Decimal) -> None:
    """Move the instrument's reference price (the centre of its price band). Machine-driven
    every step, so not audited itself; the orders it leads to are."""
    Instrument.objects.filter(pk=instrument.pk).update(reference_price=price)
    instrument.reference_price = price


def simulator_account_ensure(username: str, name: str, kind: str) -> TradingAccount:
    """The simulator's trading account `name` of user `username` (created without a password
    if missing, so nobody logs in as it). Funds come by deposit when an order lacks them."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
        user_set_role(user=user, role=Role.TRADER, actor=SIMULATOR_ACTOR)
    account = TradingAccount.objects.filter(owner=user, kind=kind).order_by("id").first()
    if account is None:
        venue = Instrument.objects.select_related("venue").order_by("id")[0].venue
        account = account_create(owner=user, venue=venue, name=name, kind=kind, actor=SIMULATOR_ACTOR)
    return account


class InstrumentDriver:
    """One instrument's simulation: the walk, the maker's ladder, the noise trader."""

    def __init__(
        self,
        instrument: Instrument,
        config: SimulatorSettings,
        rng: random.Random,
        maker: TradingAccount,
        noise: TradingAccount,
    ):
        self.instrument = instrument
        self.config = config
        self.rng = rng
        self.maker = maker
        self.noise = noise

    def step(self) -> None:
        self.instrument.refresh_from_db(fields=["reference_price", "status", "last_price"])
        if self.instrument.status != InstrumentStatus.TRADING:
            return  # halted: the simulator waits like every trader
        self._walk()
        self._quote()
        if self.rng.random() < self.config.noise_orders_per_minute * self.config.step_seconds / 60:
            self._noise_order()

    def _walk(self) -> None:
        dt = self.config.step_seconds / _SECONDS_PER_YEAR
        sigma = self.config.volatility * math.sqrt(dt)
        factor = math.exp(self.rng.gauss(self.config.drift * dt - sigma * sigma / 2, sigma))
        price = floor_to(self.instrument.reference_price * Decimal(factor), self.instrument.tick_size)
        if price > 0 and price != self.instrument.reference_price:
            reference_price_set(instrument=self.instrument, price=price)

    def _quote(self) -> None:
        quotes = list(
            Order.objects.filter(account=self.maker, instrument=self.instrument, status__in=OPEN_STATUSES).values_list(
                "side", "price"
            )
        )
        reference = self.instrument.reference_price
        bids = [price for side, price in quotes if side == Side.BUY]
        asks = [price for side, price in quotes if side == Side.SELL]
        if bids and asks and len(quotes) >= self.config.maker_levels:
            centre = (max(bids) + min(asks)) / 2
            if abs(centre - reference) / reference * 10_000 <= Decimal(str(self.config.maker_requote_bps)):
                return
        if quotes:
            order_cancel_all(
                account_ids=[self.maker.pk], instrument_id=self.instrument.pk, actor=SIMULATOR_ACTOR, reason="requote"
            )
        best_bid, best_ask = self._others_best()
        step = reference * Decimal(str(self.config.maker_step_bps)) / 10_000
        for level in range(self.config.maker_levels):
            offset = step * (Decimal(level) + Decimal("0.5"))
            notional = Decimal(str(self.config.maker_quote_notional)) * (1 + Decimal(level) / 4)
            tick = self.instrument.tick_size
            bid = floor_to(reference - offset, tick)
            ask = floor_to(reference + offset, tick)
            # Never through another trader's resting order: a LIMIT_MAKER that would cross is refused.
            bid = min(bid, best_ask - tick) if best_ask is not None else bid
            ask = max(ask, best_bid + tick) if best_bid is not None else ask
            for side, price in ((Side.BUY, bid), (Side.SELL, ask)):
                if price > 0:
                    self._place(self.maker, side, OrderType.LIMIT_MAKER, notional, price)

    def _others_best(self) -> tuple[Decimal | None, Decimal | None]:
        """The best bid and ask resting from anyone but the maker (its LIMIT_MAKER quotes must not cross them)."""
        book = Order.objects.filter(
            instrument=self.instrument, status__in=OPEN_STATUSES, is_working=True, price__isnull=False
        ).exclude(account=self.maker)
        bid = book.filter(side=Side.BUY).order_by("-price").values_list("price", flat=True).first()
        ask = book.filter(side=Side.SELL).order_by("price").values_list("price", flat=True).first()
        return bid, ask

    def _noise_order(self) -> None:
        side = self.rng.choice([Side.BUY, Side.SELL])
        notional = Decimal(str(self.config.noise_notional * self.rng.uniform(0.2, 2.0)))
        if self.rng.random() < 0.6:
            self._place(self.noise, side, OrderType.MARKET, notional)
            return
        away = Decimal(str(self.rng.uniform(-10, 10))) / 10_000
        price = self.instrument.reference_price * (1 - away if side == Side.BUY else 1 + away)
        self._place(self.noise, side, OrderType.LIMIT, notional, floor_to(price, self.instrument.tick_size))
        resting = Order.objects.filter(account=self.noise, instrument=self.instrument, status__in=OPEN_STATUSES)
        for order in resting.order_by("-id")[_NOISE_RESTING_MAX:]:
            with contextlib.suppress(OrderRejected):
                order_cancel(order=order, actor=SIMULATOR_ACTOR, reason="noise trader moves on")

    def _place(
        self, account: TradingAccount, side: str, kind: str, notional: Decimal, price: Decimal | None = None
    ) -> None:
        instrument = self.instrument
        quantity = max(
            instrument.min_qty, floor_to(notional / (price or instrument.reference_price), instrument.lot_size)
        )
        request = OrderRequest(
            side=side,
            type=kind,
            quantity=quantity,
            price=price,
            time_in_force=TimeInForce.GTC if kind == OrderType.LIMIT else "",
        )
        try:
            order_place(account=account, instrument=instrument, request=request, actor=SIMULATOR_ACTOR)
        except OrderRejected as refusal:
            if refusal.code == "INSUFFICIENT_BALANCE":
                self._top_up(account, side, quantity, price or instrument.reference_price)
            else:
                logger.info("simulator_order_refused", symbol=instrument.symbol, code=refusal.code)

    def _top_up(self, account: TradingAccount, side: str, quantity: Decimal, price: Decimal) -> None:
        asset, amount = (
            (self.instrument.quote, quantity * price) if side == Side.BUY else (self.instrument.base, quantity)
        )
        deposit_create(
            account=account,
            asset=asset,
            amount=(amount * _TOP_UP_FACTOR).quantize(Decimal("0.00000001")),
            reason="simulator top-up",
            actor=SIMULATOR_ACTOR,
        )


def instrument_claims() -> AdvisoryClaims:
    """The instruments this process's simulator drives: one lock each (portal.claims)."""
    return AdvisoryClaims(_LOCK_CLASS, "simulator")


class Simulator:
    """Drives the instruments named (all by default) that no other simulator drives."""

    def __init__(self, *, symbols: Iterable[str] | None = None, seed: int | None = None, config=None):
        self.symbols = {s.upper() for s in symbols} if symbols else None
        self.config = config or SimulatorSettings.from_settings()
        self.rng = random.Random(seed)  # noqa: S311 - a simulation, reproducible by its seed
        self.claims = instrument_claims()
        self.drivers: dict[int, InstrumentDriver] = {}
        self._accounts: tuple[TradingAccount, TradingAccount] | None = None

    def _instruments(self) -> list[Instrument]:
        instruments = Instrument.objects.select_related("base", "quote").order_by("id")
        if self.symbols is not None:
            instruments = instruments.filter(symbol__in=self.symbols)
        return list(instruments)

    def step(self) -> None:
        """Claim what is free, then one step of every instrument driven. A failed step is
        logged and the others go on."""
        instruments = {i.pk: i for i in self._instruments()}
        if not instruments:
            return
        if self._accounts is None:
            self._accounts = (
                simulator_account_ensure(MAKER_USERNAME, "Quotes", AccountKind.MARKET_MAKER),
                simulator_account_ensure(NOISE_USERNAME, "Noise", AccountKind.TRADER),
            )
        held = self.claims.claim(instruments)
        for instrument_id in held & set(instruments):
            if instrument_id not in self.drivers:
                self.drivers[instrument_id] = InstrumentDriver(
                    instruments[instrument_id], self.config, self.rng, *self._accounts
                )
                logger.info("simulator_drives", symbol=instruments[instrument_id].symbol)
            try:
                self.drivers[instrument_id].step()
            except Exception:  # noqa: BLE001 - one instrument's failure must not stop the market
                logger.exception("simulator_step_failed", symbol=instruments[instrument_id].symbol)

    def run(self, *, stop: threading.Event, steps: int | None = None) -> int:
        """Step every `step_seconds` until `stop` is set (or `steps` are done); returns the steps run."""
        done = 0
        try:
            while not stop.is_set() and (steps is None or done < steps):
                started = time.monotonic()
                try:
                    self.step()
                except Exception:  # noqa: BLE001 - e.g. SQLite busy, a dropped connection: try again next step
                    logger.exception("simulator_step_failed")
                    connection.close_if_unusable_or_obsolete()
                done += 1
                stop.wait(max(0.0, self.config.step_seconds - (time.monotonic() - started)))
        finally:
            self.claims.release()
        return done


_embedded = threading.Event()


def simulator_start_embedded() -> None:
    """Embedded mode: the simulator in a daemon thread of the ASGI process (once per process)."""
    if _embedded.is_set():
        return
    _embedded.set()

    def run() -> None:
        time.sleep(2)  # let the server start answering first
        Simulator().run(stop=threading.Event())

    threading.Thread(target=run, name="tradeport-simulator", daemon=True).start()
    logger.info("embedded_simulator_started")
