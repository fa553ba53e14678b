"""Serializers of the public market data API and the operators' instrument actions."""

from rest_framework import serializers

from marketdata.models import Instrument, InstrumentStatus, Venue
from portal.decimals import AMOUNT_DIGITS, AMOUNT_PLACES


class VenueSerializer(serializers.ModelSerializer):
    symbols = serializers.SerializerMethodField()

    class Meta:
        model = Venue
        fields = ["code", "name", "symbols"]
        read_only_fields = fields

    def get_symbols(self, venue: Venue) -> list[str]:
        return [instrument.symbol for instrument in venue.instruments.all()]


class InstrumentSerializer(serializers.ModelSerializer):
    venue = serializers.CharField(source="venue.code")
    base = serializers.CharField(source="base.code")
    quote = serializers.CharField(source="quote.code")
    filters = serializers.SerializerMethodField()

    class Meta:
        model = Instrument
        fields = [
            "symbol",
            "venue",
            "base",
            "quote",
            "status",
            "status_reason",
            "price_precision",
            "tick_size",
            "lot_size",
            "min_qty",
            "max_qty",
            "min_notional",
            "maker_fee_rate",
            "taker_fee_rate",
            "reference_price",
            "last_price",
            "last_trade_at",
            "filters",
        ]
        read_only_fields = fields

    def get_filters(self, instrument: Instrument) -> list[dict]:
        """The same filters in Binance's exchangeInfo shape, for integrations that expect it."""
        return [
            {"filterType": "PRICE_FILTER", "tickSize": str(instrument.tick_size)},
            {
                "filterType": "LOT_SIZE",
                "minQty": str(instrument.min_qty),
                "maxQty": str(instrument.max_qty),
                "stepSize": str(instrument.lot_size),
            },
            {"filterType": "MIN_NOTIONAL", "minNotional": str(instrument.min_notional)},
        ]


class DepthLevelSerializer(serializers.Serializer):
    price = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    quantity = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    orders = serializers.IntegerField()


class DepthSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    sequence = serializers.IntegerField(help_text="Grows with every order entering the book (like lastUpdateId).")
    bids = DepthLevelSerializer(many=True)
    asks = DepthLevelSerializer(many=True)


class MarketTradeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    price = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    quantity = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    quote_quantity = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    aggressor_side = serializers.CharField()
    executed_at = serializers.DateTimeField()


class StatusChangeSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[InstrumentStatus.HALT, InstrumentStatus.BREAK], default=InstrumentStatus.HALT, required=False
    )
    reason = serializers.CharField(max_length=255)


class ResumeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)
