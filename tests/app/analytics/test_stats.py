"""The one percentile (app/analytics/stats.py) of the analytics page, the NLU evaluation and the benchmarks.

It replaced two hand-written ones (nlu/evaluation.py, benchmarks/rest_latency.py): the figures must not
change, so it is checked against their formula (linear interpolation between the closest ranks, the
definition docs/analytics.md states) as well as on the benchmark's and the evaluation's own examples.
"""

from __future__ import annotations

import math
import random

import pytest

from app.analytics.stats import percentile, ratio


def closest_ranks(values: list[float], q: float) -> float:
    """The hand-written definition both replaced functions used, verbatim."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([7.0], 50, 7.0),
        ([7.0], 99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # order does not matter
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(v) for v in range(1, 101)], 95, 95.05),
        ([float(v) for v in range(1, 101)], 99, 99.01),
        ([10.0, 20.0], 25, 12.5),
        ([1, 2, 3, 4], 50, 2.5),  # the NLU evaluation's examples
        ([10.0], 95, 10.0),
    ],
)
def test_percentile_interpolates_between_closest_ranks(
    values: list[float], q: float, expected: float
) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_the_figures_are_those_of_the_replaced_functions() -> None:
    rng = random.Random(7)
    for _ in range(300):
        values = [rng.uniform(0, 5000) for _ in range(rng.randint(1, 60))]
        for q in (0, 1, 25, 50, 90, 95, 99, 99.9, 100, rng.uniform(0, 100)):
            assert percentile(values, q) == pytest.approx(closest_ranks(values, q), rel=1e-12, abs=1e-9)


def test_missing_values_are_left_out_and_no_values_have_no_percentile() -> None:
    assert percentile([1.0, None, float("nan"), 3.0], 50) == 2.0
    assert percentile([], 50) is None
    assert percentile([None, float("nan")], 95) is None


@pytest.mark.parametrize("q", [-1, 100.5])
def test_a_q_outside_0_to_100_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], q)


def test_a_rate_of_nothing_is_undefined() -> None:
    assert ratio(1, 4) == 0.25 and ratio(0, 4) == 0.0
    assert ratio(3, 0) is None
