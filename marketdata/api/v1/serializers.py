"""Serializers of the public market data API and the operators' instrument actions."""

from datetime import UTC, datetime

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketdata.models import CandleInterval, Instrument, InstrumentStatus, Venue
from marketdata.selectors import CANDLES_MAX
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
    sequence = serializers.IntegerField(
        help_text="The book's sequence these levels stand at (like lastUpdateId): apply the `book.<SYMBOL>` "
        "stream's diffs with a higher `seq` on top."
    )
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


@extend_schema_field(OpenApiTypes.STR)
class InstantField(serializers.Field):
    """A moment: Unix time in milliseconds (Binance's `startTime`) or ISO 8601 (UTC when it
    names no offset)."""

    default_error_messages = {"invalid": "Give Unix time in milliseconds or an ISO 8601 date-time."}

    def to_internal_value(self, data):
        text = str(data).strip()
        try:
            if text.isdigit():
                return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
            moment = parse_datetime(text)
        except (ValueError, OverflowError, OSError):
            moment = None
        if moment is None:
            self.fail("invalid")
        return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)

    def to_representation(self, value):
        return value.isoformat()


class CandleQuerySerializer(serializers.Serializer):
    interval = serializers.ChoiceField(choices=CandleInterval.choices)
    start = InstantField(required=False, help_text="First bucket's open time (included).")
    end = InstantField(required=False, help_text="Last bucket's open time (included).")
    limit = serializers.IntegerField(min_value=1, max_value=CANDLES_MAX, default=500)

    def validate(self, attrs):
        if "start" in attrs and "end" in attrs and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"start": "Must not be after end."})
        return attrs


class CandleSerializer(serializers.Serializer):
    """The contract of one candle; `marketdata.candles.candle_json` renders it (see there why)."""

    open_time = serializers.DateTimeField()
    close_time = serializers.DateTimeField(help_text="The bucket's last millisecond.")
    open = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    high = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    low = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    close = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    volume = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, help_text="In the base asset."
    )
    quote_volume = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    trade_count = serializers.IntegerField()


class TickerSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    open_time = serializers.DateTimeField()
    close_time = serializers.DateTimeField()
    open = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, allow_null=True)
    high = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, allow_null=True)
    low = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, allow_null=True)
    last = serializers.DecimalField(
        max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, allow_null=True, help_text="The last trade's price."
    )
    change = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, allow_null=True)
    change_percent = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True)
    base_volume = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    quote_volume = serializers.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    trade_count = serializers.IntegerField()


class IndicatorSeriesSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The indicator as requested, normalized: `macd:12:26:9`.")
    name = serializers.CharField()
    params = serializers.DictField(child=serializers.FloatField())
    outputs = serializers.DictField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="Each output's values, one per open time; null while history is too short.",
    )


class IndicatorsSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    interval = serializers.CharField()
    open_times = serializers.ListField(child=serializers.DateTimeField())
    indicators = IndicatorSeriesSerializer(many=True)
