"""Portal page of the markets overview: every instrument's last price, 24 h change and volume,
and a sparkline of its last 24 hours."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from marketdata.selectors import market_overview

SPARK_WIDTH, SPARK_HEIGHT = 120, 32


def sparkline_points(values: Sequence[Decimal], width: int = SPARK_WIDTH, height: int = SPARK_HEIGHT) -> str:
    """SVG polyline points drawing `values` across `width` × `height` (the highest at the
    top); empty with fewer than two values."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = high - low or Decimal(1)
    step = Decimal(width) / (len(values) - 1)
    return " ".join(
        f"{float(step * index):.1f},{float(height - (value - low) / span * height):.1f}"
        for index, value in enumerate(values)
    )


@login_required
def markets(request):
    rows = [
        {
            "row": row,
            "points": sparkline_points(row.closes),
            "direction": "up" if (row.ticker.change or 0) >= 0 else "down",
        }
        for row in market_overview()
    ]
    context = {"rows": rows, "spark_width": SPARK_WIDTH, "spark_height": SPARK_HEIGHT}
    return render(request, "portal/markets.html", context)
