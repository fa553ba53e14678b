"""Market data routes of /api/v1/ (included by portal/api/v1/urls.py)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from marketdata.api.v1 import views

router = SimpleRouter(trailing_slash=False)
router.register("exchanges", views.ExchangeViewSet, basename="exchange")
router.register("symbols", views.SymbolViewSet, basename="symbol")

urlpatterns = [
    path("markets/<str:symbol>/depth", views.DepthView.as_view(), name="market-depth"),
    path("markets/<str:symbol>/trades", views.MarketTradesView.as_view(), name="market-trades"),
    path("markets/<str:symbol>/candles", views.CandlesView.as_view(), name="market-candles"),
    path("markets/<str:symbol>/ticker", views.TickerView.as_view(), name="market-ticker"),
    path("markets/<str:symbol>/indicators", views.IndicatorsView.as_view(), name="market-indicators"),
    *router.urls,
]
