"""Public market data (venue, symbols, depth, trade tape, candles, ticker) and the operators' halt / resume."""

from __future__ import annotations

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from marketdata.api.v1.serializers import (
    CandleQuerySerializer,
    CandleSerializer,
    DepthSerializer,
    IndicatorsSerializer,
    InstrumentSerializer,
    MarketTradeSerializer,
    ResumeSerializer,
    StatusChangeSerializer,
    TickerSerializer,
    VenueSerializer,
)
from marketdata.candles import candle_json
from marketdata.indicators import KINDS, indicator_specs_parse, indicators_over_window
from marketdata.models import Instrument, InstrumentStatus, Venue
from marketdata.selectors import candles_range, instrument_get, ticker_24h
from portal.api.docs import PROBLEM_RESPONSES, problem
from portal.api.permissions import IsAuthenticatedWithScope
from portal.api.views import ApiView, ApiViewSet
from portal.choices import Role
from portal.errors import DomainError
from riskmgmt.services import instrument_status_set
from trading.selectors import book_depth, recent_trades


def _limit(request, *, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise DomainError("validation_error", f"limit must be an integer from 1 to {maximum}.", status=400)
    return int(raw)


@extend_schema_view(
    list=extend_schema(
        summary="The venue and its symbols (public)", auth=[], responses={200: VenueSerializer(many=True)}
    )
)
class ExchangeViewSet(mixins.ListModelMixin, ApiViewSet):
    serializer_class = VenueSerializer
    pagination_class = None
    permission_classes = [AllowAny]

    def get_queryset(self):
        return Venue.objects.prefetch_related(Prefetch("instruments", queryset=Instrument.objects.order_by("symbol")))


@extend_schema_view(
    list=extend_schema(
        summary="Instruments with their filters and status (public)",
        auth=[],
        responses={200: InstrumentSerializer(many=True)},
    ),
    retrieve=extend_schema(
        summary="One instrument (public)", auth=[], responses={200: InstrumentSerializer, 404: PROBLEM_RESPONSES[404]}
    ),
)
class SymbolViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Instruments by symbol. Operators also halt and resume them here."""

    serializer_class = InstrumentSerializer
    pagination_class = None
    lookup_field = "symbol"
    lookup_value_regex = r"[A-Za-z0-9]{2,32}"
    read_role = Role.VIEWER
    write_role = Role.OPERATOR

    def get_permissions(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [AllowAny()]
        return [IsAuthenticatedWithScope()]

    def get_queryset(self):
        return Instrument.objects.select_related("venue", "base", "quote").order_by("symbol")

    def get_object(self):
        return instrument_get(symbol=self.kwargs["symbol"])

    @extend_schema(
        summary="Halt an instrument (operators): new orders are refused until resumed",
        request=StatusChangeSerializer,
        responses={
            200: InstrumentSerializer,
            **PROBLEM_RESPONSES,
            409: problem("Already in that status", "STATUS_UNCHANGED", 409),
        },
    )
    @action(detail=True, methods=["post"])
    def halt(self, request, symbol=None):
        payload = StatusChangeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        instrument = instrument_status_set(
            instrument=self.get_object(),
            status=payload.validated_data.get("status", InstrumentStatus.HALT),
            reason=payload.validated_data["reason"],
            actor=request.auth or request.user,
        )
        return Response(InstrumentSerializer(instrument_get(symbol=instrument.symbol)).data)

    @extend_schema(
        summary="Resume trading of an instrument (operators)",
        request=ResumeSerializer,
        responses={
            200: InstrumentSerializer,
            **PROBLEM_RESPONSES,
            409: problem("Already trading", "STATUS_UNCHANGED", 409),
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, symbol=None):
        payload = ResumeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        instrument = instrument_status_set(
            instrument=self.get_object(),
            status=InstrumentStatus.TRADING,
            reason=payload.validated_data["reason"],
            actor=request.auth or request.user,
        )
        return Response(InstrumentSerializer(instrument_get(symbol=instrument.symbol)).data)


class DepthView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_depth_retrieve",
        summary="Order book depth: resting quantity per price level (public)",
        auth=[],
        parameters=[OpenApiParameter("limit", int, description="Levels per side, 1–500 (default 20).")],
        responses={200: DepthSerializer, 400: PROBLEM_RESPONSES[400], 404: PROBLEM_RESPONSES[404]},
    )
    def get(self, request, symbol: str):
        depth = book_depth(instrument=instrument_get(symbol=symbol), levels=_limit(request, default=20, maximum=500))
        return Response(DepthSerializer(depth).data)


class MarketTradesView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_trades_list",
        summary="Recent trades of a symbol, newest first (public)",
        auth=[],
        parameters=[OpenApiParameter("limit", int, description="1–1000 (default 50).")],
        responses={200: MarketTradeSerializer(many=True), 400: PROBLEM_RESPONSES[400], 404: PROBLEM_RESPONSES[404]},
    )
    def get(self, request, symbol: str):
        trades = recent_trades(
            instrument=instrument_get(symbol=symbol), limit=_limit(request, default=50, maximum=1000)
        )
        return Response(MarketTradeSerializer(trades, many=True).data)


class CandlesView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_candles_list",
        summary="Candles of a symbol, oldest first (public)",
        description=(
            "Buckets start at multiples of the interval since the Unix epoch, in UTC. A bucket "
            "without trades has no candle. With `start`, the first `limit` candles from it; "
            "otherwise the latest `limit` up to `end` (or now)."
        ),
        auth=[],
        parameters=[CandleQuerySerializer],
        responses={200: CandleSerializer(many=True), 400: PROBLEM_RESPONSES[400], 404: PROBLEM_RESPONSES[404]},
    )
    def get(self, request, symbol: str):
        instrument = instrument_get(symbol=symbol)
        query = CandleQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        candles = candles_range(instrument=instrument, **query.validated_data)
        interval = query.validated_data["interval"]
        return Response([candle_json(row.open_time, interval, row) for row in candles])


class TickerView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_ticker_retrieve",
        summary="24 h rolling ticker of a symbol (public)",
        auth=[],
        responses={200: TickerSerializer, 404: PROBLEM_RESPONSES[404]},
    )
    def get(self, request, symbol: str):
        return Response(TickerSerializer(ticker_24h(instrument=instrument_get(symbol=symbol))).data)


class IndicatorsView(ApiView):
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="markets_indicators_retrieve",
        summary="Technical indicators over a symbol's candles (public)",
        description=(
            "Name each indicator in an `indicator` parameter (repeatable), as `name` or "
            "`name:param:param`: "
            + ", ".join(f"`{':'.join([k.name, *(p for p, _, _ in k.parameters)])}`" for k in KINDS.values())
            + ". Periods run from 2 to 500. The window is the candles' (`interval`, `start`, `end`, `limit`); "
            "earlier candles warm the indicators up. Computed by TA-Lib (VWAP, which TA-Lib lacks, "
            "per UTC day)."
        ),
        auth=[],
        parameters=[
            CandleQuerySerializer,
            OpenApiParameter("indicator", str, many=True, required=True, description="e.g. sma:20, rsi:14, vwap"),
        ],
        responses={200: IndicatorsSerializer, 400: PROBLEM_RESPONSES[400], 404: PROBLEM_RESPONSES[404]},
    )
    def get(self, request, symbol: str):
        instrument = instrument_get(symbol=symbol)
        query = CandleQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        specs = indicator_specs_parse(request.query_params.getlist("indicator"))
        window = indicators_over_window(instrument=instrument, specs=specs, **query.validated_data)
        body = {"symbol": instrument.symbol, "interval": query.validated_data["interval"], **vars(window)}
        return Response(IndicatorsSerializer(body).data)
