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
