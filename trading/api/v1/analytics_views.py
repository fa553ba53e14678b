"""Analytics endpoints: an account's portfolio summary and its trading stats over a period.

Thin: parse the query, pick the account the caller may see, call `trading.analytics`, render.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from portal.api.docs import PROBLEM_RESPONSES, problem
from portal.api.views import ApiView
from trading import analytics
from trading.api.v1.analytics_serializers import (
    AccountQuerySerializer,
    PortfolioSummarySerializer,
    TradingStatsQuerySerializer,
    TradingStatsSerializer,
)

_READ_PROBLEMS = {code: PROBLEM_RESPONSES[code] for code in (400, 401, 403, 404, 429)}


class PortfolioSummaryView(ApiView):
    @extend_schema(
        operation_id="analytics_portfolio_summary_retrieve",
        summary="Portfolio summary: balances valued in USDT, allocation, positions and P&L",
        description=(
            "Every non-zero balance valued in the valuation asset (USDT) at the last trade price of "
            "its USDT pair (the reference price before any trade), with its share of the total. "
            "An asset no pair prices in USDT is listed with `price`, `value` and `allocation_pct` "
            "null and left out of `total_value`. Another user's account is answered 404 "
            "(operators may read any)."
        ),
        parameters=[AccountQuerySerializer],
        responses={200: PortfolioSummarySerializer, **_READ_PROBLEMS},
    )
    def get(self, request):
        query = AccountQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        account = analytics.analytics_account(user=request.user, account_id=query.validated_data.get("account"))
        return Response(PortfolioSummarySerializer(analytics.portfolio_summary(account=account)).data)


class TradingStatsView(ApiView):
    @extend_schema(
        operation_id="analytics_trading_stats_retrieve",
        summary="Trading stats of an account over a period: orders, volume, fees, P&L, win rate",
        description=(
            "Orders created and trades executed in [start, end); the default period is the last "
            "30 days, the longest 366 days. Each trade counts for your side of it (maker or taker). "
            "A closing trade (one that reduced your position) realizes P&L: the win rate is "
            "winning / (winning + losing) closing trades. Amount totals are in the valuation asset "
            "(USDT); `by_symbol` rows are in their pair's quote asset."
        ),
        parameters=[TradingStatsQuerySerializer],
        responses={
            200: TradingStatsSerializer,
            **_READ_PROBLEMS,
            400: problem("The period ends before it starts (or `range_too_long`, or an unparsable date)", "bad_range"),
        },
        examples=[
            OpenApiExample(
                "Period too long",
                value={
                    "type": "urn:tradeport:problem:range_too_long",
                    "title": "Bad Request",
                    "status": 400,
                    "detail": "The period spans more than 366 days; choose a shorter one.",
                    "code": "range_too_long",
                    "errors": {"start": ["Must be at most 366 days before end."]},
                    "trace_id": "5f0c9b6f2a5e4d0e9b1f3c7a2d4e6f80",
                },
                response_only=True,
                status_codes=["400"],
            )
        ],
    )
    def get(self, request):
        query = TradingStatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        account = analytics.analytics_account(user=request.user, account_id=data.get("account"))
        stats = analytics.trading_stats(account=account, start=data.get("start"), end=data.get("end"))
        return Response(TradingStatsSerializer(stats).data)
