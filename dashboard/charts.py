"""Charts as server-rendered SVG: pure functions from a series to markup.

No library and no script: the page works offline, prints, and a test reads the
markup. A long series is cut into at most `most` consecutive buckets, each drawn as
its mean with a band from its lowest to its highest value, so 500 resyncs read as
well as 20 and the SVG stays the same size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 360, 110
LEFT, RIGHT, TOP, BOTTOM = 46, 8, 8, 22  # room for the axis labels
MOST = 50  # points drawn at most, whatever the series' length


@dataclass(frozen=True)
class Bucket:
    """Consecutive points of a series: their mean, lowest and highest, and the labels
    of the first and last (one point: the same)."""

    mean: float
    low: float
    high: float
    first: str
    last: str
    count: int

    @property
    def label(self) -> str:
        return self.first if self.count == 1 else f"{self.first} – {self.last} ({self.count} resyncs)"


def buckets(values: Sequence[float], labels: Sequence[str], most: int = MOST) -> list[Bucket]:
    """`values` (with their `labels`) in at most `most` consecutive buckets of nearly equal size."""
    if len(values) != len(labels):
        raise ValueError("values and labels differ in length")
    n = len(values)
    parts = min(n, most)
    out = []
    for i in range(parts):
        lo, hi = i * n // parts, (i + 1) * n // parts
        chunk = values[lo:hi]
        out.append(
            Bucket(sum(chunk) / len(chunk), min(chunk), max(chunk), labels[lo], labels[hi - 1], len(chunk))
        )
    return out


def nice_ceiling(value: float) -> float:
    """The axis top: the smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return step * power
    return 10 * power


def number(value: float) -> str:
    """A count or a measure, short: 1,234 or 0.5."""
    return f"{value:,.0f}" if value == int(value) or abs(value) >= 100 else f"{value:,.2g}"


def line_chart(
    values: Sequence[float],
    labels: Sequence[str],
    title: str,
    fmt: Callable[[float], str] = number,
    most: int = MOST,
) -> str:
    """A line of `values` over `labels` (oldest first) as an <svg> element; each point's
    <title> names its label and value, which a browser shows on hover."""
    label = escape(title)
    if not values:
        return (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}: no data">'
            f'<title>{label}: no data</title><text x="{WIDTH / 2}" y="{HEIGHT / 2}" '
            f'text-anchor="middle" class="axis">No data</text></svg>'
        )
    data = buckets(values, labels, most)
    top = nice_ceiling(max(b.high for b in data))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if len(data) == 1 else plot_w * i / (len(data) - 1))

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{label}">',
        f"<title>{label}</title>",
        f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(top):.0f}" y2="{y(top):.0f}"/>',
        f'<line class="axis-line" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.0f}" y2="{y(0):.0f}"/>',
        f'<text class="axis" x="{LEFT - 4}" y="{y(top) + 4:.0f}" text-anchor="end">{escape(fmt(top))}</text>',
        f'<text class="axis" x="{LEFT - 4}" y="{y(0) + 4:.0f}" text-anchor="end">{escape(fmt(0))}</text>',
        f'<text class="axis" x="{LEFT}" y="{HEIGHT - 6}">{escape(data[0].first)}</text>',
    ]
    if len(data) > 1:
        parts.append(
            f'<text class="axis" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
            f"{escape(data[-1].last)}</text>"
        )
    if any(b.count > 1 for b in data):
        band = [f"{x(i):.0f},{y(b.high):.0f}" for i, b in enumerate(data)]
        band += [f"{x(i):.0f},{y(b.low):.0f}" for i, b in reversed(list(enumerate(data)))]
        parts.append(f'<polygon class="band" points="{" ".join(band)}"/>')
    line = " ".join(f"{x(i):.0f},{y(b.mean):.0f}" for i, b in enumerate(data))
    parts.append(f'<polyline class="line" points="{line}"/>')
    for i, b in enumerate(data):
        value = fmt(b.mean) if b.count == 1 else f"mean {fmt(b.mean)}, {fmt(b.low)} to {fmt(b.high)}"
        parts.append(
            f'<circle class="point" cx="{x(i):.0f}" cy="{y(b.mean):.0f}" r="2.5">'
            f"<title>{escape(b.label)}: {escape(value)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: Sequence[tuple[str, int, str]], title: str) -> str:
    """Horizontal bars, one per (label, count, css class), as an <svg> element."""
    label = escape(title)
    row, left, width = 24, 120, 420
    top = max([count for _l, count, _c in bars] + [1])
    height = row * len(bars) + 4
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="{label}">',
        f"<title>{label}</title>",
    ]
    room = width - left - 50
    for i, (name, count, css) in enumerate(bars):
        y = 2 + i * row
        w = room * count / top
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(name)}</text>'
            f'<rect class="bar {escape(css)}" x="{left}" y="{y + 3}" width="{w:.0f}" height="{row - 8}">'
            f"<title>{escape(name)}: {count:,}</title></rect>"
            f'<text class="axis" x="{left + w + 4:.0f}" y="{y + 15}">{count:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
