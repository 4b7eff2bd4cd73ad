"""How the analytics and evaluation pages show a figure: on the analytics page, undefined figures (None,
NaN) as "–", never as 0."""

from __future__ import annotations

import math
from typing import Any


def format_rate(value: float | None) -> str:
    """A rate as the page shows it: ``"87.5%"``, or ``"–"`` when undefined."""
    return "–" if value is None or math.isnan(value) else f"{value:.1%}"


def format_cost(value: float | None) -> str:
    """A cost as the page shows it (model prices are tiny: 4 decimals)."""
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"


def format_ms(value: float | None) -> str:
    """A latency in ms as the page shows it."""
    return "–" if value is None or math.isnan(value) else f"{value:,.0f} ms"


def format_number(value: float | None) -> str:
    """A count or mean as the page shows it (one decimal unless whole)."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def format_figure(value: Any) -> str:
    """A result figure as the evaluation page shows it: 4 significant digits for a float, else as is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
