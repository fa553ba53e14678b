"""Venues, assets and instruments: what can be traded, and the filters an order must pass.

Order books, trades and candles live elsewhere (trading, and marketdata's later modules);
this module holds only the reference data the engine reads under the instrument lock.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from portal.decimals import AMOUNT_PLACES, AmountField, RateField


class Venue(models.Model):
    """The exchange itself. Fees of its instruments go to its fee account (trading app)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Asset(models.Model):
    """A coin or currency (BTC, USDT). `precision` is how many decimals its amounts carry."""

    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=64)
    precision = models.PositiveSmallIntegerField(default=AMOUNT_PLACES)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(precision__lte=AMOUNT_PLACES), name="asset_precision_fits_storage"),
        ]

    def __str__(self) -> str:
        return self.code


class InstrumentStatus(models.TextChoices):
    TRADING = "TRADING", "Trading"
    HALT = "HALT", "Halted"
    BREAK = "BREAK", "Break"


class Instrument(models.Model):
    """A spot pair (BTCUSDT = BTC priced in USDT) with Binance-style filters.

    `order_seq` numbers the orders entering this instrument's book (time priority); the
    engine increments it in the same statement that takes the instrument lock.
    `last_price` is the price of the last trade (stop triggers, unrealized P&L);
    `reference_price` is the centre of the price band (the simulator moves it).
    """

    symbol = models.CharField(max_length=32, unique=True)
    venue = models.ForeignKey(Venue, on_delete=models.PROTECT, related_name="instruments")
    base = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    quote = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=InstrumentStatus.choices, default=InstrumentStatus.TRADING)
    status_reason = models.CharField(max_length=255, blank=True)
    tick_size = AmountField(help_text="Prices must be multiples of this (PRICE_FILTER).")
    price_precision = models.PositiveSmallIntegerField(help_text="Decimals shown for prices.")
    lot_size = AmountField(help_text="Quantities must be multiples of this (LOT_SIZE step).")
    min_qty = AmountField()
    max_qty = AmountField()
    min_notional = AmountField(help_text="price × quantity must reach this, in the quote asset.")
    maker_fee_rate = RateField(default=Decimal("0.001"))
    taker_fee_rate = RateField(default=Decimal("0.001"))
    reference_price = AmountField()
    last_price = AmountField(null=True, blank=True)
    last_trade_at = models.DateTimeField(null=True, blank=True)
    order_seq = models.BigIntegerField(default=0, editable=False)
    #: Numbers the `trades.<SYMBOL>` stream's messages in commit order, gap-free (ADR 0006):
    #: every transaction that trades adds one, under the instrument's lock.
    tape_seq = models.BigIntegerField(default=0, editable=False)
    #: Numbers the `book.<SYMBOL>` stream's diffs the same way: every transaction that changes
    #: a price level of the book adds one. REST depth's `sequence` is this number.
    book_seq = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(condition=Q(tick_size__gt=0), name="instrument_tick_size_positive"),
            models.CheckConstraint(condition=Q(lot_size__gt=0), name="instrument_lot_size_positive"),
            models.CheckConstraint(condition=Q(min_qty__gt=0), name="instrument_min_qty_positive"),
            models.CheckConstraint(condition=Q(max_qty__gte=F("min_qty")), name="instrument_max_qty_not_below_min"),
            models.CheckConstraint(condition=Q(min_notional__gte=0), name="instrument_min_notional_not_negative"),
            models.CheckConstraint(condition=Q(reference_price__gt=0), name="instrument_reference_price_positive"),
            models.CheckConstraint(
                condition=Q(maker_fee_rate__gte=0, maker_fee_rate__lt=1, taker_fee_rate__gte=0, taker_fee_rate__lt=1),
                name="instrument_fee_rates_in_range",
            ),
            models.CheckConstraint(condition=~Q(base=F("quote")), name="instrument_base_differs_from_quote"),
            models.CheckConstraint(
                condition=Q(taker_fee_rate__gte=F("maker_fee_rate")), name="instrument_taker_fee_not_below_maker"
            ),
        ]

    def __str__(self) -> str:
        return self.symbol

    @property
    def is_trading(self) -> bool:
        return self.status == InstrumentStatus.TRADING

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for name in ("tick_size", "lot_size", "min_qty"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                errors[name] = "Must be greater than zero."
        if self.min_qty and self.lot_size and self.min_qty % self.lot_size:
            errors["min_qty"] = "Must be a multiple of the lot size."
        if self.max_qty is not None and self.min_qty is not None and self.max_qty < self.min_qty:
            errors["max_qty"] = "Must not be below the minimum quantity."
        if self.tick_size and self.price_precision is not None and tick_decimals(self.tick_size) > self.price_precision:
            errors["price_precision"] = "Must show at least as many decimals as the tick size has."
        if self.reference_price and self.tick_size and self.reference_price % self.tick_size:
            errors["reference_price"] = "Must be a multiple of the tick size."
        if (
            self.tick_size
            and self.lot_size
            and tick_decimals(self.tick_size) + tick_decimals(self.lot_size) > AMOUNT_PLACES
        ):
            # price × quantity must be stored exactly, or trades, ledger and candles round apart
            errors["lot_size"] = f"Tick size and lot size together may have at most {AMOUNT_PLACES} decimals."
        if self.base_id and self.base_id == self.quote_id:
            errors["quote"] = "Base and quote must differ."
        if (
            self.taker_fee_rate is not None
            and self.maker_fee_rate is not None
            and self.taker_fee_rate < self.maker_fee_rate
        ):
            errors["taker_fee_rate"] = "The taker fee must not be below the maker fee (locks cover the taker fee)."
        if errors:
            raise ValidationError(errors)


def tick_decimals(step: Decimal) -> int:
    """How many decimals a price or quantity step has (0.01 → 2, 5 → 0)."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class InstrumentStatusChange(models.Model):
    """History of halts and resumes, with who did it and why (also in the audit log)."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="status_changes")
    from_status = models.CharField(max_length=8, choices=InstrumentStatus.choices)
    to_status = models.CharField(max_length=8, choices=InstrumentStatus.choices)
    reason = models.CharField(max_length=255)
    changed_by = models.CharField(max_length=150)
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.instrument}: {self.from_status} → {self.to_status}"


class CandleInterval(models.TextChoices):
    """Candle widths. Buckets start at multiples of the width since the Unix epoch, in UTC
    (days at 00:00 UTC, 4 h at 00:00, 04:00, … UTC), like Binance's klines."""

    M1 = "1m", "1 minute"
    M5 = "5m", "5 minutes"
    M15 = "15m", "15 minutes"
    H1 = "1h", "1 hour"
    H4 = "4h", "4 hours"
    D1 = "1d", "1 day"


class CandleOrigin(models.TextChoices):
    TRADES = "TRADES", "This venue's trades"
    BACKFILL = "BACKFILL", "Synthesized history (backfill_history)"
    IMPORT = "IMPORT", "Imported klines (import_klines)"


class Candle(models.Model):
    """Open, high, low, close and volume of an instrument's trades in one time bucket.

    Built from the trades in the engine's transaction (`marketdata.candles`), so a committed
    trade is always in its candles; a bucket without trades has no row. `volume` is in the
    base asset, `quote_volume` in the quote asset. History from elsewhere (`backfill_history`,
    `import_klines`) lives in the same table, marked by `origin`, and only in buckets that
    end before the instrument's first trade: a bucket never mixes the two."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="candles")
    interval = models.CharField(max_length=3, choices=CandleInterval.choices)
    open_time = models.DateTimeField()
    open = AmountField()
    high = AmountField()
    low = AmountField()
    close = AmountField()
    volume = AmountField()
    quote_volume = AmountField()
    trade_count = models.PositiveIntegerField()
    origin = models.CharField(max_length=8, choices=CandleOrigin.choices, default=CandleOrigin.TRADES)

    class Meta:
        ordering = ["instrument", "interval", "open_time"]
        constraints = [
            # Also the index of every range query: (instrument, interval, open_time BETWEEN …).
            models.UniqueConstraint(fields=["instrument", "interval", "open_time"], name="candle_bucket_unique"),
            models.CheckConstraint(
                condition=Q(low__gt=0, high__gte=F("low"), open__gte=F("low"), open__lte=F("high"))
                & Q(close__gte=F("low"), close__lte=F("high")),
                name="candle_prices_consistent",
            ),
            models.CheckConstraint(condition=Q(volume__gte=0, quote_volume__gte=0), name="candle_volume_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.interval} {self.open_time:%Y-%m-%d %H:%M}"
