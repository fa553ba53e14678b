"""Trading routes of /api/v1/ (included by portal/api/v1/urls.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from trading.api.v1 import analytics_views, strategy_views, views

router = SimpleRouter(trailing_slash=False)
router.register("accounts", views.TradingAccountViewSet, basename="account")
router.register("orders", views.OrderViewSet, basename="order")
router.register("trades", views.TradeViewSet, basename="trade")
router.register("balances", views.BalanceViewSet, basename="balance")
router.register("positions", views.PositionViewSet, basename="position")
router.register("ledger", views.LedgerViewSet, basename="ledger")
router.register("deposits", views.DepositViewSet, basename="deposit")
router.register("withdrawals", views.WithdrawalViewSet, basename="withdrawal")
router.register("backtests", strategy_views.BacktestViewSet, basename="backtest")
router.register("strategies", strategy_views.StrategyViewSet, basename="strategy")

urlpatterns = [
    path("analytics/portfolio-summary", analytics_views.PortfolioSummaryView.as_view(), name="portfolio-summary"),
    path("analytics/trading-stats", analytics_views.TradingStatsView.as_view(), name="trading-stats"),
    path("strategy-types", strategy_views.StrategyTypesView.as_view(), name="strategy-types"),
    *router.urls,
]
