"""Serializers of the analytics API: the query parameters in, the portfolio summary and trading
stats (`trading.analytics`) out; decimals as strings."""

from __future__ import annotations

from datetime import UTC, datetime, time

from django.utils.dateparse import parse_date
from rest_framework import serializers

from marketdata.api.v1.serializers import InstantField
from trading.api.v1.serializers import amount_field


def percent_field(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True, **kwargs)


class PeriodBoundField(InstantField):
    """A moment as `InstantField` takes it, or a bare ISO date (its midnight UTC)."""

    default_error_messages = {"invalid": "Give an ISO 8601 date or date-time, or Unix time in milliseconds."}

    def to_internal_value(self, data):
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            try:
                day = parse_date(str(data).strip())
            except ValueError:
                day = None
            if day is None:
                self.fail("invalid")
            return datetime.combine(day, time.min, tzinfo=UTC)


class AccountQuerySerializer(serializers.Serializer):
    account = serializers.IntegerField(
        required=False, min_value=1, help_text="Trading account id; default: your first active account."
    )


class TradingStatsQuerySerializer(AccountQuerySerializer):
    start = PeriodBoundField(
        required=False,
        help_text="Start of the period (included), ISO 8601 (UTC when no offset; a date is its midnight) "
        "or Unix ms; default: 30 days before end.",
    )
    end = PeriodBoundField(required=False, help_text="End of the period (excluded), as start; default: now.")


class AssetHoldingSerializer(serializers.Serializer):
    asset = serializers.CharField()
    free = amount_field()
    locked = amount_field()
    total = amount_field()
    price = amount_field(allow_null=True, help_text="In the valuation asset; null when no pair prices the asset in it.")
    value = amount_field(allow_null=True, help_text="total × price; null (and not in total_value) when unpriced.")
    allocation_pct = percent_field(help_text="Share of total_value, in percent.")


class PositionHoldingSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    quote_asset = serializers.CharField(help_text="The asset this position's amounts are in.")
    quantity = amount_field(help_text="Negative: sold more than bought.")
    average_price = amount_field()
    last_price = amount_field(help_text="Last trade price (reference price before any trade).")
    market_value = amount_field()
    realized_pnl = amount_field()
    unrealized_pnl = amount_field()
    fees_paid = amount_field()


class PortfolioSummarySerializer(serializers.Serializer):
    account = serializers.IntegerField(source="account_id")
    valuation_asset = serializers.CharField(help_text="The asset every value and total is in.")
    as_of = serializers.DateTimeField()
    total_value = amount_field(help_text="Sum of the valued assets' values.")
    realized_pnl = amount_field(help_text="Realized P&L of the positions in pairs quoted in the valuation asset.")
    unrealized_pnl = amount_field(help_text="Unrealized P&L of those positions at the last prices.")
    assets = AssetHoldingSerializer(many=True, help_text="Non-zero balances, the most valuable first.")
    positions = PositionHoldingSerializer(many=True)


class OrderCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    new = serializers.IntegerField()
    partially_filled = serializers.IntegerField(help_text="Still open with part of them filled.")
    filled = serializers.IntegerField()
    canceled = serializers.IntegerField(help_text="Including orders canceled after a partial fill.")
    rejected = serializers.IntegerField()
    expired = serializers.IntegerField()
    fill_ratio_pct = percent_field(help_text="filled / total, in percent; null without orders.")


class SymbolStatsSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    quote_asset = serializers.CharField(help_text="The asset this row's amounts are in.")
    trade_count = serializers.IntegerField()
    volume = amount_field()
    fees = amount_field()
    realized_pnl = amount_field()


class TradingStatsSerializer(serializers.Serializer):
    account = serializers.IntegerField(source="account_id")
    valuation_asset = serializers.CharField(help_text="The asset the amount totals are in.")
    start = serializers.DateTimeField(help_text="Included.")
    end = serializers.DateTimeField(help_text="Excluded.")
    orders = OrderCountsSerializer(help_text="Orders created in the period, by their status now.")
    trade_count = serializers.IntegerField(help_text="Trades executed in the period, your side of each.")
    volume = amount_field(help_text="Sum of the trades' quote amounts.")
    fees = amount_field(help_text="Fees you paid on them.")
    realized_pnl = amount_field(help_text="P&L your trades in the period realized (before fees).")
    net_realized_pnl = amount_field(help_text="realized_pnl − fees.")
    winning_trades = serializers.IntegerField(help_text="Closing trades with realized P&L > 0.")
    losing_trades = serializers.IntegerField(help_text="Closing trades with realized P&L < 0.")
    win_rate_pct = percent_field(help_text="winning / (winning + losing), in percent; null without either.")
    average_win = amount_field(allow_null=True)
    average_loss = amount_field(allow_null=True, help_text="Negative.")
    unrealized_pnl = amount_field(help_text="Of your open positions now (not the period's).")
    by_symbol = SymbolStatsSerializer(many=True)
