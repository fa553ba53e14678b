"""Trading accounts, the ledger and balances, orders, trades and positions.

Rows here change only through `trading.services` (and the engine it drives); the admin and
the API read them. Amounts are Decimals with 8 places (`portal.decimals`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from marketdata.models import Asset, CandleInterval, Instrument, Venue
from portal.decimals import ZERO, AmountField, RateField
from trading.choices import (
    OPEN_STATUSES,
    AccountKind,
    LedgerKind,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    StrategyStatus,
    TimeInForce,
)


class TradingAccount(models.Model):
    """A pot of balances that places orders. A user may own several; the venue owns its fee account."""

    venue = models.ForeignKey(Venue, on_delete=models.PROTECT, related_name="accounts")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="trading_accounts"
    )
    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=AccountKind.choices, default=AccountKind.TRADER)
    stp_mode = models.CharField(
        "self-trade prevention",
        max_length=16,
        choices=SelfTradePrevention.choices,
        default=SelfTradePrevention.EXPIRE_TAKER,
    )
    is_active = models.BooleanField(default=True)
    #: Number the messages of the owner's private streams about this account (`orders`,
    #: `fills`, `balances`), gap-free per stream, inside the transactions that make them (ADR 0006).
    orders_seq = models.BigIntegerField(default=0, editable=False)
    fills_seq = models.BigIntegerField(default=0, editable=False)
    balances_seq = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind=AccountKind.FEE) | Q(owner__isnull=False), name="account_owned_unless_fee_account"
            ),
            models.UniqueConstraint(
                fields=["venue"], condition=Q(kind=AccountKind.FEE), name="one_fee_account_per_venue"
            ),
            models.UniqueConstraint(fields=["owner", "name"], name="account_name_unique_per_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class Balance(models.Model):
    """What an account holds of one asset: `free` to spend, `locked` by open orders.

    Always equals the sum of the account's ledger entries for the asset; never negative
    (the database refuses it, and the ledger's guarded UPDATE never tries).
    """

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="balances")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    free = AmountField(default=ZERO)
    locked = AmountField(default=ZERO)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "asset__code"]
        constraints = [
            models.UniqueConstraint(fields=["account", "asset"], name="balance_unique_per_account_asset"),
            models.CheckConstraint(condition=Q(free__gte=0), name="balance_free_not_negative"),
            models.CheckConstraint(condition=Q(locked__gte=0), name="balance_locked_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.asset_id}: {self.free} free, {self.locked} locked"

    @property
    def total(self):
        return self.free + self.locked


class LedgerEntryImmutable(Exception):
    """Raised on any attempt to change or delete a ledger entry."""


class LedgerEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise LedgerEntryImmutable("Ledger entries are append-only.")

    def delete(self):
        raise LedgerEntryImmutable("Ledger entries are append-only.")


class LedgerEntry(models.Model):
    """One change of one balance, append-only, with its cause (order, trade, or a reason).

    `free_after` / `locked_after` are the balance right after this entry, so a statement
    shows a running balance without summing history.
    """

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="ledger_entries")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    free_delta = AmountField()
    locked_delta = AmountField()
    free_after = AmountField()
    locked_after = AmountField()
    reason = models.CharField(max_length=255, blank=True)
    order = models.ForeignKey("Order", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    trade = models.ForeignKey("Trade", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        base_manager_name = "objects"
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["account", "asset", "-id"], name="ledger_account_asset_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.asset_id} free {self.free_delta:+} locked {self.locked_delta:+}"

    def save(self, *args, **kwargs):
        if not self._state.adding or kwargs.get("update_fields"):
            raise LedgerEntryImmutable("Ledger entries are append-only.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LedgerEntryImmutable("Ledger entries are append-only.")


class Order(models.Model):
    """An order and its life: NEW → PARTIALLY_FILLED → FILLED, or CANCELED / REJECTED / EXPIRED.

    `quantity` is in the base asset; a MARKET order may instead give `quote_quantity`.
    `locked_amount` is what the order still holds locked (quote for buys, base for sells);
    `lock_price` is the price that lock was computed at (the limit price, or for orders that
    execute at market, the protection price at the edge of the price band). `is_working`
    is False while a stop order waits for its trigger. `priority` orders the book in time.
    """

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="orders")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(max_length=64, blank=True)
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=20, choices=OrderType.choices)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, blank=True)
    quantity = AmountField(null=True, blank=True)
    quote_quantity = AmountField(null=True, blank=True)
    price = AmountField(null=True, blank=True)
    stop_price = AmountField(null=True, blank=True)
    lock_price = AmountField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.NEW)
    reject_reason = models.CharField(max_length=32, blank=True)
    expire_reason = models.CharField(max_length=32, blank=True)
    stp_mode = models.CharField(max_length=16, choices=SelfTradePrevention.choices)
    max_fee_rate = RateField(help_text="The taker fee rate when placed: the most this order is ever charged.")
    executed_qty = AmountField(default=ZERO)
    executed_quote = AmountField(default=ZERO)
    fees_paid = AmountField(default=ZERO)
    locked_amount = AmountField(default=ZERO)
    is_working = models.BooleanField(default=True)
    priority = models.BigIntegerField(null=True, blank=True)
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    strategy = models.ForeignKey(
        "trading.Strategy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="orders",
        help_text="The strategy that placed it, on behalf of the account's owner.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"],
                condition=Q(status__in=OPEN_STATUSES) & ~Q(client_order_id=""),
                name="order_client_id_unique_among_open",
            ),
            models.CheckConstraint(condition=Q(executed_qty__gte=0), name="order_executed_not_negative"),
            models.CheckConstraint(
                condition=Q(quantity__isnull=True) | Q(executed_qty__lte=F("quantity")),
                name="order_executed_within_quantity",
            ),
            models.CheckConstraint(condition=Q(locked_amount__gte=0), name="order_locked_not_negative"),
        ]
        indexes = [
            # The book: resting orders of one instrument and side, best price first, then time
            # (asks: lowest price first; bids, highest price first, have an index of their own).
            models.Index(
                fields=["instrument", "side", "price", "priority"],
                condition=Q(status__in=OPEN_STATUSES, is_working=True),
                name="order_book_idx",
            ),
            models.Index(
                F("instrument"),
                F("price").desc(),
                F("priority"),
                condition=Q(status__in=OPEN_STATUSES, is_working=True, side=Side.BUY),
                name="order_book_bids_idx",
            ),
            # Stop orders waiting for their trigger.
            models.Index(
                fields=["instrument", "stop_price"],
                condition=Q(status__in=OPEN_STATUSES, is_working=False),
                name="order_pending_stop_idx",
            ),
            models.Index(fields=["account", "status", "-id"], name="order_account_status_idx"),
            models.Index(fields=["account", "-id"], name="order_account_history_idx"),
            models.Index(fields=["account", "client_order_id"], name="order_client_id_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.type} {self.instrument_id}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining_qty(self):
        return None if self.quantity is None else self.quantity - self.executed_qty


class Trade(models.Model):
    """One match: the taker (aggressor) hit the maker's resting order at the maker's price.

    Fees are in the quote asset, charged to each side and credited to the venue's fee
    account. `*_realized_pnl` is what the trade realized on each side's position.
    """

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="trades")
    price = AmountField()
    quantity = AmountField()
    quote_quantity = AmountField()
    aggressor_side = models.CharField(max_length=4, choices=Side.choices)
    maker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="maker_trades")
    taker_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="taker_trades")
    maker_account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="+")
    taker_account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="+")
    maker_fee = AmountField()
    taker_fee = AmountField()
    maker_realized_pnl = AmountField(default=ZERO)
    taker_realized_pnl = AmountField(default=ZERO)
    executed_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0, price__gt=0), name="trade_positive"),
            models.CheckConstraint(condition=~Q(maker_account=F("taker_account")), name="trade_not_self_trade"),
        ]
        indexes = [
            models.Index(fields=["instrument", "-id"], name="trade_tape_idx"),
            models.Index(fields=["maker_account", "-id"], name="trade_maker_account_idx"),
            models.Index(fields=["taker_account", "-id"], name="trade_taker_account_idx"),
            models.Index(fields=["maker_account", "executed_at"], name="trade_maker_day_idx"),
            models.Index(fields=["taker_account", "executed_at"], name="trade_taker_day_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.quantity} @ {self.price}"

    @property
    def buyer_account_id(self) -> int:
        return self.taker_account_id if self.aggressor_side == Side.BUY else self.maker_account_id

    @property
    def seller_account_id(self) -> int:
        return self.maker_account_id if self.aggressor_side == Side.BUY else self.taker_account_id


class Position(models.Model):
    """Net quantity an account traded in an instrument (negative = sold more than bought),
    its average entry price, realized P&L and fees paid. Unrealized P&L and market value are
    computed from the instrument's last price when read."""

    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="positions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    quantity = AmountField(default=ZERO)
    average_price = AmountField(default=ZERO)
    realized_pnl = AmountField(default=ZERO)
    fees_paid = AmountField(default=ZERO)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "instrument__symbol"]
        constraints = [
            models.UniqueConstraint(fields=["account", "instrument"], name="position_unique_per_account_instrument")
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.instrument_id}: {self.quantity} @ {self.average_price}"


class Strategy(models.Model):
    """An automated strategy of a trader: a type from the catalogue (trading.strategies.builtin)
    with its parameters, the account and instrument it trades, the bars it sees, and its own risk
    caps. The live runner (trading.strategies.runner) drives the running ones; `state` is what the
    strategy keeps across a restart, `last_bar_at` the open time of the last bar it was given,
    `run` counts its starts (its orders' client ids carry it). Position and P&L are those of its
    own fills, kept up to date by the runner."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="strategies")
    account = models.ForeignKey(TradingAccount, on_delete=models.PROTECT, related_name="strategies")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=32)
    params = models.JSONField()
    interval = models.CharField(max_length=3, choices=CandleInterval.choices, default=CandleInterval.M1)
    max_position = AmountField(null=True, blank=True, help_text="Base quantity the strategy may hold at most.")
    max_order_qty = AmountField(null=True, blank=True, help_text="Base quantity of one order at most.")
    max_daily_loss = AmountField(
        null=True, blank=True, help_text="Quote lost since 00:00 UTC after which it only reduces its position."
    )
    status = models.CharField(max_length=8, choices=StrategyStatus.choices, default=StrategyStatus.STOPPED)
    error = models.TextField(blank=True)
    state = models.JSONField(default=dict, blank=True)
    runner_state = models.JSONField(
        default=dict, blank=True, help_text="The runner's own: the last trade seen, today's starting P&L."
    )
    last_bar_at = models.DateTimeField(null=True, blank=True)
    run = models.PositiveIntegerField(default=0)
    position = AmountField(default=ZERO)
    average_price = AmountField(default=ZERO)
    realized_pnl = AmountField(default=ZERO)
    fees_paid = AmountField(default=ZERO)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="strategy_name_unique_per_owner"),
        ]
        indexes = [models.Index(fields=["status"], name="strategy_status_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} on {self.instrument_id})"


class StrategyLogLine(models.Model):
    """A line of a strategy's log: what the runner or the strategy said (a refusal, an error with
    its traceback)."""

    class Level(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField(auto_now_add=True)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["strategy", "-id"], name="strategy_log_recent_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.level}: {self.message[:80]}"


class StrategyMark(models.Model):
    """A strategy's position and P&L at a bar's close, for its P&L over time."""

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="marks")
    at = models.DateTimeField()
    position = AmountField()
    price = AmountField()
    realized_pnl = AmountField()
    pnl = AmountField(help_text="Realized plus unrealized at `price`.")

    class Meta:
        ordering = ["strategy", "at"]
        constraints = [models.UniqueConstraint(fields=["strategy", "at"], name="strategy_mark_unique_per_bar")]

    def __str__(self) -> str:
        return f"{self.strategy_id} at {self.at:%Y-%m-%d %H:%M}: {self.pnl}"


class Backtest(models.Model):
    """A strategy type run over stored candles (trading.strategies.backtests): its inputs as they
    were requested (the instrument's fees frozen, a digest of the candles read), and once its job
    succeeded its metrics, its equity and drawdown (at most `EQUITY_POINTS` points) and its fills."""

    job = models.OneToOneField("portal.Job", on_delete=models.PROTECT, related_name="backtest")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="backtests")
    strategy = models.ForeignKey(Strategy, null=True, blank=True, on_delete=models.SET_NULL, related_name="backtests")
    name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=32)
    params = models.JSONField()
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    interval = models.CharField(max_length=3, choices=CandleInterval.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    starting_balance = AmountField(help_text="Quote asset at the start.")
    slippage_bps = models.DecimalField(max_digits=8, decimal_places=2)
    maker_fee_rate = RateField()
    taker_fee_rate = RateField()
    max_position = AmountField(null=True, blank=True)
    max_order_qty = AmountField(null=True, blank=True)
    max_daily_loss = AmountField(null=True, blank=True)
    bars = models.PositiveIntegerField(default=0)
    candles_digest = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(null=True, blank=True)
    equity = models.JSONField(null=True, blank=True, help_text="{time, equity, drawdown, close}: parallel lists.")
    log = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="backtest_owner_recent_idx")]

    def __str__(self) -> str:
        return f"Backtest {self.kind} {self.instrument_id} {self.start:%Y-%m-%d}–{self.end:%Y-%m-%d}"


class BacktestFill(models.Model):
    """One fill of a backtest, in order; `realized_pnl` when it reduced the position."""

    backtest = models.ForeignKey(Backtest, on_delete=models.CASCADE, related_name="fills")
    seq = models.PositiveIntegerField()
    at = models.DateTimeField()
    side = models.CharField(max_length=4, choices=Side.choices)
    price = AmountField()
    quantity = AmountField()
    fee = AmountField()
    realized_pnl = AmountField(null=True, blank=True)
    position = AmountField(help_text="The strategy's position after it.")

    class Meta:
        ordering = ["backtest", "seq"]
        constraints = [models.UniqueConstraint(fields=["backtest", "seq"], name="backtest_fill_unique_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.side} {self.quantity} @ {self.price}"
