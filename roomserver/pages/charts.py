"""Server-rendered charts for /reports: plain SVG data, no script, nothing from a third party.

A chart is built here as numbers (bars with their geometry and label) and drawn by
the template as inline SVG, which the strict CSP allows (no script, no inline
style: colours come from classes in ``reports.css``). A hidden figure draws no bar,
only its "< 5"; every chart has the same figures beside it as a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

BAR_HEIGHT = 22
GAP = 8
LABEL_WIDTH = 220
PLOT_WIDTH = 360
VALUE_WIDTH = 90


@dataclass(frozen=True)
class Bar:
    label: str
    text: str  # the value as written in the table (or the hidden mark)
    y: int
    width: float  # 0 when hidden or empty


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    height: int
    label_width: int = LABEL_WIDTH
    plot_width: int = PLOT_WIDTH
    value_width: int = VALUE_WIDTH

    @property
    def width(self) -> int:
        return self.label_width + self.plot_width + self.value_width


def bar_chart(items: list[tuple[str, Any]], fmt: Callable[[Any], str], maximum: float | None = None) -> BarChart:
    """Horizontal bars for (label, value) pairs; values that are not numbers draw no bar."""
    numbers = [v for _, v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
    top = maximum if maximum is not None else max(numbers, default=0) or 1
    bars = []
    for i, (label, value) in enumerate(items):
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        width = round(PLOT_WIDTH * min(float(value) / top, 1.0), 1) if is_number and top else 0
        bars.append(Bar(label, fmt(value), GAP + i * (BAR_HEIGHT + GAP), width))
    return BarChart(bars, GAP + len(items) * (BAR_HEIGHT + GAP))


def heat_levels(cells: list[Any]) -> list[int]:
    """0..4 per cell of the busiest-hours table: the share of the busiest hour, in fifths (hidden: 0)."""
    numbers = [c for c in cells if isinstance(c, int)]
    top = max(numbers, default=0)
    return [0 if not isinstance(c, int) or not top or not c else min(4, 1 + int(3 * c / top)) for c in cells]
