"""Serializers of the strategy catalogue and of backtests (ADR 0008)."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketdata.models import CandleInterval
from portal.api.v1.serializers import JobSerializer
from portal.decimals import AMOUNT_DIGITS, AMOUNT_PLACES, AMOUNT_UNIT
from trading.models import Backtest, BacktestFill, Strategy, StrategyLogLine, StrategyMark
from trading.positions import unrealized_pnl


def _amount(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)


class StrategyTypeSerializer(serializers.Serializer):
    """A type of the catalogue: `params_schema` is the JSON Schema (2020-12) its parameters must
    meet (defaults included); a form can be generated from it."""

    name = serializers.CharField()
    title = serializers.CharField()
    summary = serializers.CharField()
    params_schema = serializers.JSONField()
    timer_seconds = serializers.IntegerField(allow_null=True, help_text="Seconds between timer calls, if it has one.")


class CapsSerializer(serializers.Serializer):
    max_position = _amount(required=False, allow_null=True, min_value=0, help_text="Base quantity held at most.")
    max_order_qty = _amount(required=False, allow_null=True, min_value=0, help_text="Base quantity of one order.")
    max_daily_loss = _amount(
        required=False, allow_null=True, min_value=0, help_text="Quote lost since 00:00 UTC; beyond, only reductions."
    )


class BacktestRequestSerializer(CapsSerializer):
    """A backtest of a catalogue type over stored candles. A bad request is a 400 problem with a
    stable code: unknown_type, bad_params (the field named in `errors`), bad_range, no_data,
    too_many_bars, bad_balance, bad_slippage."""

    kind = serializers.CharField(help_text="A name from `strategy-types`.")
    params = serializers.DictField(help_text="The type's parameters (its `params_schema`).")
    symbol = serializers.CharField()
    interval = serializers.ChoiceField(choices=CandleInterval.choices, default=CandleInterval.M1)
    start = serializers.DateTimeField()
    end = serializers.DateTimeField(help_text="Excluded: candles opening from start up to end.")
    starting_balance = _amount(default=Decimal(10000), help_text="Quote asset at the start.")
    slippage_bps = serializers.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal(0), help_text="Paid by market orders, in basis points (0–1000)."
    )
    name = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")


class BacktestSerializer(serializers.ModelSerializer):
    """A backtest, its inputs and, once its job succeeded, its metrics (trading.strategies.metrics
    documents each). `equity` and `fills` have endpoints of their own."""

    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    job = JobSerializer(read_only=True)

    class Meta:
        model = Backtest
        fields = [
            "id",
            "name",
            "owner",
            "kind",
            "params",
            "symbol",
            "interval",
            "start",
            "end",
            "starting_balance",
            "slippage_bps",
            "maker_fee_rate",
            "taker_fee_rate",
            "max_position",
            "max_order_qty",
            "max_daily_loss",
            "bars",
            "candles_digest",
            "metrics",
            "log",
            "created_at",
            "finished_at",
            "job",
        ]
        read_only_fields = fields


class BacktestEquitySerializer(serializers.Serializer):
    """Parallel lists, at most 2,000 points: each point closes an equal run of bars (`time`:
    seconds since the epoch); `drawdown` is the deepest of its run (a fraction, ≤ 0)."""

    time = serializers.ListField(child=serializers.IntegerField())
    equity = serializers.ListField(child=serializers.FloatField())
    drawdown = serializers.ListField(child=serializers.FloatField())
    close = serializers.ListField(child=serializers.FloatField())


class BacktestFillSerializer(serializers.ModelSerializer):
    class Meta:
        model = BacktestFill
        fields = ["seq", "at", "side", "price", "quantity", "fee", "realized_pnl", "position"]
        read_only_fields = fields


class StrategyWriteSerializer(CapsSerializer):
    """A strategy as a trader defines it; on PATCH every field is optional. The account must be
    one of yours on the instrument's venue; `params` must meet the type's `params_schema` (a
    refusal names the field, e.g. `params.fast`)."""

    name = serializers.CharField(max_length=100)
    kind = serializers.CharField(help_text="A name from `strategy-types`.")
    params = serializers.DictField(default=dict)
    account = serializers.IntegerField()
    symbol = serializers.CharField()
    interval = serializers.ChoiceField(choices=CandleInterval.choices, default=CandleInterval.M1)


class StrategySerializer(serializers.ModelSerializer):
    """A strategy, its status (`error` holds the traceback of what stopped it) and the position
    and P&L of its own fills; `unrealized_pnl` at the instrument's last price."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    account = serializers.IntegerField(source="account_id", read_only=True)
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    unrealized_pnl = serializers.SerializerMethodField()

    class Meta:
        model = Strategy
        fields = [
            "id",
            "name",
            "owner",
            "kind",
            "params",
            "account",
            "symbol",
            "interval",
            "max_position",
            "max_order_qty",
            "max_daily_loss",
            "status",
            "error",
            "run",
            "position",
            "average_price",
            "realized_pnl",
            "unrealized_pnl",
            "fees_paid",
            "last_bar_at",
            "started_at",
            "stopped_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES))
    def get_unrealized_pnl(self, strategy: Strategy) -> str:
        price = strategy.instrument.last_price or strategy.instrument.reference_price
        value = unrealized_pnl(quantity=strategy.position, average_price=strategy.average_price, last_price=price)
        return f"{value.quantize(AMOUNT_UNIT):f}"


class StrategyLogLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = StrategyLogLine
        fields = ["id", "at", "level", "message"]
        read_only_fields = fields


class StrategyMarkSerializer(serializers.ModelSerializer):
    class Meta:
        model = StrategyMark
        fields = ["at", "position", "price", "realized_pnl", "pnl"]
        read_only_fields = fields
