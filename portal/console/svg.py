"""Charts drawn on the server as inline SVG: no script, no other origin.

Only presentation attributes (``fill``, ``stroke``), never ``style``: the
console's Content-Security-Policy allows no inline style. Every text is
escaped here, so the markup can be put in a page as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 56
BAR, LIMIT, INK, GRID = "#2f6f9f", "#c0392b", "#222", "#ccc"


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    note: str = ""  # the tooltip (SVG <title>), e.g. "3 of 4 seats"


def _nice_top(value: float) -> float:
    """A round number at or above ``value`` for the top of the axis."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 2.5, 5, 10):
        if factor * step >= value:
            return factor * step
    return 10 * step


def _number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def bar_chart(title: str, bars: Sequence[Bar], *, unit: str = "",
              limit: float | None = None, limit_label: str = "") -> str:
    """A bar chart; ``limit`` draws a horizontal line (a site's capacity)."""
    top = _nice_top(max([b.value for b in bars] + [limit or 0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(bars))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" aria-label={quoteattr(title)}>',
             f"<title>{escape(title)}</title>",
             f'<text x="{LEFT}" y="16" fill="{INK}" font-size="13">{escape(title)}</text>']
    for i in range(5):
        value = top * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
                     f'stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" fill="{INK}" font-size="10" '
                     f'text-anchor="end">{escape(_number(value))}</text>')
    every = max(1, len(bars) // 16)  # at most about 16 labels under the axis
    for i, bar in enumerate(bars):
        height = plot_h * bar.value / top
        x = LEFT + i * slot + slot * 0.1
        y = TOP + plot_h - height
        tip = f"{bar.label}: {_number(bar.value)}{unit}" + (f" ({bar.note})" if bar.note else "")
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.8:.1f}" '
                     f'height="{height:.1f}" fill="{BAR}" data-label={quoteattr(bar.label)} '
                     f'data-value="{_number(bar.value)}"><title>{escape(tip)}</title></rect>')
        if i % every == 0:
            lx, ly = LEFT + i * slot + slot / 2, TOP + plot_h + 12
            parts.append(f'<text x="{lx:.1f}" y="{ly:.1f}" fill="{INK}" font-size="10" '
                         f'text-anchor="end" transform="rotate(-40 {lx:.1f} {ly:.1f})">'
                         f"{escape(bar.label)}</text>")
    if limit is not None and limit > 0:
        y = TOP + plot_h - plot_h * limit / top
        parts.append(f'<line class="limit" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" '
                     f'y2="{y:.1f}" stroke="{LIMIT}" stroke-width="2" stroke-dasharray="6 3">'
                     f"<title>{escape(limit_label)}</title></line>")
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{y - 4:.1f}" fill="{LIMIT}" font-size="10" '
                     f'text-anchor="end">{escape(limit_label)}</text>')
    if not bars:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" fill="{INK}" font-size="12" '
                     'text-anchor="middle">No data in this range</text>')
    parts.append("</svg>")
    return "".join(parts)
