"""Small line charts as inline SVG (no image files, no plotting library on the request)."""

from __future__ import annotations

from collections.abc import Sequence

from suanli.ui.html import e

COLORS = ["#2f6fdb", "#d92d20", "#12b76a", "#f79009", "#7a5af8"]


def line_chart(
    title: str,
    xs: Sequence[float],
    series: Sequence[tuple[str, Sequence[float]]],
    x_label: str,
    y_label: str,
    width: int = 420,
    height: int = 170,
) -> str:
    """One chart: each series a polyline over ``xs``; a legend names them."""
    left, right, top, bottom = 44, 8, 22, 26
    w, h = width - left - right, height - top - bottom
    ymax = max((max(ys, default=0.0) for _, ys in series), default=0.0) or 1.0
    ymax *= 1.1
    x0, x1 = (xs[0], xs[-1]) if xs else (0.0, 1.0)
    span = (x1 - x0) or 1.0

    def px(x: float) -> float:
        return left + (x - x0) / span * w

    def py(y: float) -> float:
        return top + h - y / ymax * h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{e(title)}">',
        f'<text x="{left}" y="14" font-size="12" font-weight="600">{e(title)}</text>',
        f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#98a2b3"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#98a2b3"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end">{ymax:.3g}</text>',
        f'<text x="{left - 4}" y="{top + h}" font-size="10" text-anchor="end">0</text>',
        f'<text x="{left + w / 2}" y="{height - 6}" font-size="10" text-anchor="middle">'
        f"{e(x_label)}</text>",
        f'<text x="10" y="{top + h / 2}" font-size="10" text-anchor="middle" '
        f'transform="rotate(-90 10 {top + h / 2})">{e(y_label)}</text>',
    ]
    for k, (name, ys) in enumerate(series):
        color = COLORS[k % len(COLORS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=False))
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{points}"/>'
        )
        lx = left + 8 + k * 130
        parts.append(f'<rect x="{lx}" y="{top + 2}" width="10" height="3" fill="{color}"/>')
        parts.append(f'<text x="{lx + 14}" y="{top + 7}" font-size="10">{e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
