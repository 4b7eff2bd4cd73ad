"""The statistics every figure uses: percentiles and rates, with "undefined" kept apart from 0.

Numpy only, so the NLU evaluation and the benchmarks use the same percentile as the analytics page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of the finite values, by linear interpolation between the closest
    ranks (numpy's default: the value at rank ``(n - 1) * q / 100``); None when there are none.

    Missing values (None, NaN) are left out; ``ValueError`` for a ``q`` outside 0-100.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100, got {q}")
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    return float(np.percentile(array, q)) if array.size else None


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, or None when ``whole`` is 0 (a rate of nothing is undefined, not 0)."""
    return part / whole if whole else None
