from django.urls import path

from portal.web import dashboard_views, market_views, report_views, risk_views, strategy_views, trading_views, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", dashboard_views.dashboard, name="dashboard"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("profile/", views.profile, name="profile"),
    path("api-keys/", views.api_keys, name="api-keys"),
    path("api-keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
    path("system/", views.system_status, name="system"),
    path("markets/", market_views.markets, name="markets"),
    path("trade/", trading_views.trade, name="trade"),
    path("trade/orders/<int:order_id>/cancel/", trading_views.order_cancel_view, name="order-cancel"),
    path("orders/", trading_views.order_history, name="orders"),
    path("risk/", risk_views.risk, name="risk"),
    path("reports/", report_views.reports, name="reports"),
    path("strategies/", strategy_views.strategies, name="strategies"),
    path("strategies/<int:strategy_id>/", strategy_views.strategy_detail, name="strategy"),
    path("strategies/<int:strategy_id>/start/", strategy_views.strategy_start_view, name="strategy-start"),
    path("strategies/<int:strategy_id>/stop/", strategy_views.strategy_stop_view, name="strategy-stop"),
    path("backtests/<int:backtest_id>/", strategy_views.backtest_detail, name="backtest"),
    path("backtests/<int:backtest_id>/report.csv", strategy_views.backtest_report, name="backtest-report"),
    path("backtests/compare/", strategy_views.backtest_compare, name="backtest-compare"),
    path("reports/schedules/<int:schedule_id>/toggle/", report_views.schedule_toggle, name="schedule-toggle"),
    path("reports/schedules/<int:schedule_id>/delete/", report_views.schedule_delete, name="schedule-delete"),
]
