"""Serializers of the trading API: input shapes separate from output shapes; decimals as strings."""

from __future__ import annotations

from rest_framework import serializers

from portal.decimals import AMOUNT_DIGITS, AMOUNT_PLACES
from trading.choices import OrderStatus, OrderType, SelfTradePrevention, Side, TimeInForce
from trading.models import Balance, LedgerEntry, Position, Trade, TradingAccount


def amount_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, **kwargs)


class TradingAccountSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True, default=None)

    class Meta:
        model = TradingAccount
        fields = ["id", "name", "kind", "owner", "stp_mode", "is_active", "created_at"]
        read_only_fields = fields


class TradingAccountCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    stp_mode = serializers.ChoiceField(choices=SelfTradePrevention.choices, default=SelfTradePrevention.EXPIRE_TAKER)
    owner = serializers.CharField(required=False, help_text="Operators only: the username the account is for.")


class TradingAccountUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False)
    stp_mode = serializers.ChoiceField(choices=SelfTradePrevention.choices, required=False)


class OrderSerializer(serializers.Serializer):
    """An order as the API shows it. A plain Serializer with declared fields: the API renders
    one on every order placed, and a ModelSerializer re-derives its fields from the model on
    each use (about a millisecond per order, bench/README.md)."""

    id = serializers.IntegerField(read_only=True)
    account = serializers.IntegerField(source="account_id", read_only=True)
    client_order_id = serializers.CharField(read_only=True)
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    side = serializers.ChoiceField(choices=Side.choices, read_only=True)
    type = serializers.ChoiceField(choices=OrderType.choices, read_only=True)
    time_in_force = serializers.ChoiceField(choices=[("", ""), *TimeInForce.choices], read_only=True)
    quantity = amount_field(read_only=True, allow_null=True)
    quote_quantity = amount_field(read_only=True, allow_null=True)
    price = amount_field(read_only=True, allow_null=True)
    stop_price = amount_field(read_only=True, allow_null=True)
    status = serializers.ChoiceField(choices=OrderStatus.choices, read_only=True)
    reject_reason = serializers.CharField(read_only=True, help_text="Reason code of a REJECTED order.")
    expire_reason = serializers.CharField(read_only=True, help_text="Why an EXPIRED order ended.")
    executed_qty = amount_field(read_only=True)
    executed_quote = amount_field(read_only=True)
    remaining_qty = amount_field(read_only=True, allow_null=True)
    fees_paid = amount_field(read_only=True)
    locked_amount = amount_field(read_only=True)
    is_working = serializers.BooleanField(read_only=True, help_text="False while a stop order waits for its trigger.")
    stp_mode = serializers.ChoiceField(choices=SelfTradePrevention.choices, read_only=True)
    replaces = serializers.IntegerField(source="replaces_id", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    done_at = serializers.DateTimeField(read_only=True, allow_null=True)


class OrderCreateSerializer(serializers.Serializer):
    """A new order. Quantities and prices are decimal strings with at most 8 decimals."""

    account = serializers.IntegerField(required=False, help_text="Trading account id; default: your first account.")
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Side.choices)
    type = serializers.ChoiceField(choices=OrderType.choices)
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices, required=False, allow_blank=True, default="")
    quantity = amount_field(required=False, allow_null=True, default=None)
    quote_quantity = amount_field(
        required=False, allow_null=True, default=None, help_text="MARKET only: spend / receive this quote amount."
    )
    price = amount_field(required=False, allow_null=True, default=None)
    stop_price = amount_field(required=False, allow_null=True, default=None)
    client_order_id = serializers.RegexField(
        r"^[A-Za-z0-9._:\-]{1,64}$",
        required=False,
        allow_blank=True,
        default="",
        help_text="Your id for the order, unique among your open orders on the account (letters, digits, . _ : -).",
    )


class OrderReplaceSerializer(OrderCreateSerializer):
    account = None  # type: ignore[assignment]
    symbol = None  # type: ignore[assignment]


class CancelAllSerializer(serializers.Serializer):
    account = serializers.IntegerField(required=False, help_text="Default: every account of yours.")
    symbol = serializers.CharField(max_length=32, required=False)
    side = serializers.ChoiceField(choices=Side.choices, required=False)


class CanceledOrdersSerializer(serializers.Serializer):
    canceled = OrderSerializer(many=True)


class TradeSerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    account = serializers.SerializerMethodField()
    order = serializers.SerializerMethodField()
    side = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    fee = serializers.SerializerMethodField()
    realized_pnl = serializers.SerializerMethodField()

    class Meta:
        model = Trade
        fields = [
            "id",
            "symbol",
            "account",
            "order",
            "side",
            "role",
            "price",
            "quantity",
            "quote_quantity",
            "fee",
            "realized_pnl",
            "aggressor_side",
            "executed_at",
        ]
        read_only_fields = fields

    def _is_maker(self, trade: Trade) -> bool:
        accounts = self.context.get("account_ids")
        return accounts is not None and trade.maker_account_id in accounts

    def get_account(self, trade: Trade) -> int:
        return trade.maker_account_id if self._is_maker(trade) else trade.taker_account_id

    def get_order(self, trade: Trade) -> int:
        return trade.maker_order_id if self._is_maker(trade) else trade.taker_order_id

    def get_side(self, trade: Trade) -> str:
        taker_side = trade.aggressor_side
        if self._is_maker(trade):
            return Side.SELL if taker_side == Side.BUY else Side.BUY
        return taker_side

    def get_role(self, trade: Trade) -> str:
        return "MAKER" if self._is_maker(trade) else "TAKER"

    def get_fee(self, trade: Trade) -> str:
        return str(trade.maker_fee if self._is_maker(trade) else trade.taker_fee)

    def get_realized_pnl(self, trade: Trade) -> str:
        return str(trade.maker_realized_pnl if self._is_maker(trade) else trade.taker_realized_pnl)


class BalanceSerializer(serializers.ModelSerializer):
    asset = serializers.CharField(source="asset.code")
    account = serializers.IntegerField(source="account_id")
    total = amount_field()

    class Meta:
        model = Balance
        fields = ["account", "asset", "free", "locked", "total", "updated_at"]
        read_only_fields = fields


class PositionSerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol")
    account = serializers.IntegerField(source="account_id")
    last_price = amount_field(read_only=True)
    unrealized_pnl = amount_field(read_only=True)
    market_value = amount_field(read_only=True)

    class Meta:
        model = Position
        fields = [
            "account",
            "symbol",
            "quantity",
            "average_price",
            "realized_pnl",
            "unrealized_pnl",
            "fees_paid",
            "last_price",
            "market_value",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        from trading.selectors import position_valuation

        for name, value in position_valuation(instance).items():
            setattr(instance, name, value)
        return super().to_representation(instance)


class LedgerEntrySerializer(serializers.ModelSerializer):
    asset = serializers.CharField(source="asset.code")
    account = serializers.IntegerField(source="account_id")

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "account",
            "asset",
            "kind",
            "free_delta",
            "locked_delta",
            "free_after",
            "locked_after",
            "reason",
            "order",
            "trade",
            "created_at",
        ]
        read_only_fields = fields


class TransferSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    asset = serializers.CharField(max_length=16)
    amount = amount_field()
    reason = serializers.CharField(max_length=255)


class TransferResultSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    asset = serializers.CharField()
    amount = amount_field()
    free = amount_field()
    locked = amount_field()
