"""Small charts drawn as inline SVG on the server (the CSP allows no inline script or style, and
a bar chart needs no library): `{% histogram_svg counts edges %}`, `{% usage_bar fraction %}`."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.html import format_html, format_html_join

register = template.Library()

WIDTH, HEIGHT = 600, 160


@register.simple_tag
def histogram_svg(counts: list[int], edges: list[float], marker: float | None = None):
    """Bars of a P&L histogram; losses red, gains green; `marker` draws the −VaR line."""
    if not counts or len(edges) != len(counts) + 1:
        return ""
    low, high = edges[0], edges[-1]
    span = (high - low) or 1.0
    tallest = max(counts) or 1
    bar = WIDTH / len(counts)

    def x_of(value: float) -> float:
        return (value - low) / span * WIDTH

    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" class="{}"><title>{} to {}: {}</title></rect>',
        (
            (
                f"{index * bar:.2f}",
                f"{HEIGHT - count / tallest * HEIGHT:.2f}",
                f"{max(bar - 1, 0.5):.2f}",
                f"{count / tallest * HEIGHT:.2f}",
                "loss" if edges[index + 1] <= 0 else "gain",
                f"{edges[index]:.2f}",
                f"{edges[index + 1]:.2f}",
                count,
            )
            for index, count in enumerate(counts)
        ),
    )
    line = ""
    if marker is not None and low <= -float(marker) <= high:
        x = f"{x_of(-float(marker)):.2f}"
        line = format_html(
            '<line x1="{}" x2="{}" y1="0" y2="{}" class="var-line"><title>−VaR</title></line>', x, x, HEIGHT
        )
    return format_html(
        '<svg class="histogram" viewBox="0 0 {} {}" role="img" aria-label="Histogram of the simulated P&amp;L" '
        'data-testid="var-histogram">{}{}</svg>',
        WIDTH,
        HEIGHT,
        bars,
        line,
    )


@register.simple_tag
def usage_bar(fraction: Decimal | float | None):
    """A 0–100 % bar (capped), amber from 80 %, red from 100 %."""
    if fraction is None:
        return ""
    value = max(0.0, float(fraction))
    level = "full" if value >= 1 else "high" if value >= 0.8 else "ok"
    return format_html(
        '<svg class="usage usage-{}" viewBox="0 0 100 8" role="img" aria-label="{} % used">'
        '<rect width="100" height="8" class="track"/><rect width="{}" height="8" class="fill"/></svg>',
        level,
        f"{value * 100:.0f}",
        f"{min(value, 1.0) * 100:.1f}",
    )


@register.simple_tag
def line_svg(
    values: list[float], label: str, css: str = "line", markers: list[tuple[int, str]] | None = None, other=None
):
    """A line of `values` over the chart's width (its low and high written at the left), with
    `markers` — (index, "BUY" / "SELL") — as triangles on the line, and `other` (a second
    series of its own length, dashed) drawn on the same scale: a backtest's equity, drawdown or
    price with its trades, and two equities compared."""
    series = [list(values or [])] + ([list(other)] if other else [])
    if not series[0]:
        return ""
    low = min(min(line) for line in series)
    high = max(max(line) for line in series)
    span = (high - low) or 1.0

    def points(line: list[float]) -> list[tuple[float, float]]:
        step = WIDTH / max(len(line) - 1, 1)
        return [(index * step, HEIGHT - 4 - (value - low) / span * (HEIGHT - 8)) for index, value in enumerate(line)]

    def path(line: list[float]) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in points(line))

    first = points(series[0])
    drawn = [format_html('<polyline points="{}" class="{}"/>', path(series[0]), css)]
    if other:
        drawn.append(format_html('<polyline points="{}" class="{} other"/>', path(series[1]), css))
    for index, side in markers or []:
        if 0 <= index < len(first):
            x, y = first[index]
            tip = y + 7 if side == "BUY" else y - 7
            drawn.append(
                format_html(
                    '<polygon points="{},{} {},{} {},{}" class="marker {}"><title>{}</title></polygon>',
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{x - 4:.1f}",
                    f"{tip:.1f}",
                    f"{x + 4:.1f}",
                    f"{tip:.1f}",
                    side.lower(),
                    side,
                )
            )
    return format_html(
        '<svg class="line-chart" viewBox="0 0 {} {}" role="img" aria-label="{}" data-testid="chart-{}">'
        '<text x="2" y="10" class="axis">{}</text><text x="2" y="{}" class="axis">{}</text>{}</svg>',
        WIDTH,
        HEIGHT,
        label,
        css,
        f"{high:,.4g}",
        HEIGHT - 2,
        f"{low:,.4g}",
        format_html_join("", "{}", ((item,) for item in drawn)),
    )
