"""Charts drawn on the server as SVG (no script): the month's 满意率 by day."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 220, 44, 12, 14, 30


def trend_svg(days: Sequence[date], by_day: Mapping[str, Mapping[str, Any]]) -> Markup:
    """满意率 (per mille, the line and its points) and the counted ratings (bars) of each day;
    days without a counted rating have no point. `by_day`: ratings_object's `by_day`."""
    n = max(len(days), 1)
    step = (WIDTH - LEFT - RIGHT) / n
    plot_h = HEIGHT - TOP - BOTTOM
    most = max([int(s["total"]) for s in by_day.values()] + [1])

    def x(i: int) -> float:
        return LEFT + step * (i + 0.5)

    def y(permille: int) -> float:
        return TOP + plot_h * (1 - permille / 1000)

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="满意率趋势" xmlns="http://www.w3.org/2000/svg">']
    for level in (0, 500, 1000):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
                     f'class="grid"/><text x="{LEFT - 4}" y="{y(level) + 4:.1f}" class="axis" '
                     f'text-anchor="end">{level // 10}%</text>')
    points = []
    for i, day in enumerate(days):
        stats = by_day.get(day.isoformat())
        if day.day == 1 or day.day % 5 == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 10}" class="axis" text-anchor="middle">'
                         f'{day.day}</text>')
        if not stats or not stats["total"]:
            continue
        bar = plot_h * 0.35 * int(stats["total"]) / most
        parts.append(f'<rect x="{x(i) - step * 0.3:.1f}" y="{TOP + plot_h - bar:.1f}" '
                     f'width="{step * 0.6:.1f}" '
                     f'height="{bar:.1f}" class="bar"><title>{day.isoformat()} 评价 {stats["total"]} 条'
                     f'</title></rect>')
        points.append((x(i), y(int(stats["rate_permille"])), day, stats))
    if points:
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
        parts.append(f'<polyline points="{path}" class="line"/>')
    for px, py, day, stats in points:
        rate = int(stats["rate_permille"]) / 10
        label = escape(f"{day.isoformat()} 满意率 {rate:.1f}% ({stats['total']} 条)")
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" class="point"><title>{label}</title>'
                     f'</circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
