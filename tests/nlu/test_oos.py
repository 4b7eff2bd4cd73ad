"""Out-of-scope threshold: FallbackClassifier's rule, the curve, and the selection rules."""

from __future__ import annotations

import math

import pytest

from nlu import oos
from nlu.oos import FALLBACK, OOS_INTENT, Scored


def test_decide_applies_threshold_then_ambiguity():
    ranking = [("greet", 0.55), ("thanks", 0.40)]
    assert oos.decide(ranking, 0.5) == "greet"
    assert oos.decide(ranking, 0.6) == FALLBACK  # below the threshold
    assert oos.decide(ranking, 0.5, 0.2) == FALLBACK  # top two closer than the ambiguity threshold
    assert oos.decide(ranking, 0.5, 0.1) == "greet"
    assert oos.decide([], 0.0) == FALLBACK


def items() -> list[Scored]:
    def s(gold, top, conf, second="x"):
        return Scored(gold, ((top, conf), (second, (1 - conf) / 2)))

    return [
        s("a", "a", 0.95),
        s("a", "a", 0.70),
        s("b", "b", 0.60),
        s("b", "a", 0.50),  # in scope
        s(OOS_INTENT, "a", 0.30),
        s(OOS_INTENT, "b", 0.65),
        s(OOS_INTENT, OOS_INTENT, 0.9),  # out of scope
    ]


def test_point_counts_in_scope_accuracy_and_oos_recall():
    p = oos.point(items(), 0.0)
    assert p["in_scope_accuracy"] == pytest.approx(3 / 4) and p["oos_recall"] == pytest.approx(1 / 3)
    p = oos.point(items(), 0.62)
    assert p["in_scope_accuracy"] == pytest.approx(2 / 4) and p["oos_recall"] == pytest.approx(2 / 3)
    assert oos.point(items(), 1.0)["oos_recall"] == 1.0


def test_curve_trades_accuracy_for_recall_monotonically():
    points = oos.curve(items(), 0.05)
    assert len(points) == 21 and points[0]["threshold"] == 0.0 and points[-1]["threshold"] == 1.0
    recalls = [p["oos_recall"] for p in points]
    accuracies = [p["in_scope_accuracy"] for p in points]
    assert recalls == sorted(recalls) and accuracies == sorted(accuracies, reverse=True)


def test_balanced_rule_takes_the_top_of_the_best_plateau():
    points = oos.curve(items(), 0.01)
    threshold, how = oos.choose_threshold(points, "balanced")
    assert how.startswith("balanced")
    best = max((p["in_scope_accuracy"] + p["oos_recall"]) / 2 for p in points)
    tied = [
        p["threshold"] for p in points if math.isclose((p["in_scope_accuracy"] + p["oos_recall"]) / 2, best)
    ]
    assert threshold == max(tied) and len(tied) > 1


def test_min_recall_rule_keeps_recall_and_maximises_accuracy():
    points = oos.curve(items(), 0.01)
    threshold, _ = oos.choose_threshold(points, "min_recall", min_oos_recall=0.6)
    chosen = oos.point(items(), threshold)
    assert chosen["oos_recall"] >= 0.6
    assert chosen["in_scope_accuracy"] == max(
        p["in_scope_accuracy"] for p in points if p["oos_recall"] >= 0.6
    )


def test_fixed_rule_and_no_oos_data_fall_back_to_the_fixed_threshold():
    assert oos.choose_threshold(oos.curve(items()), "fixed", fixed_threshold=0.33) == (0.33, "fixed")
    in_scope_only = [i for i in items() if i.gold != OOS_INTENT]
    threshold, how = oos.choose_threshold(oos.curve(in_scope_only), "balanced", fixed_threshold=0.4)
    assert threshold == 0.4 and "no out-of-scope" in how
    with pytest.raises(ValueError):
        oos.choose_threshold(oos.curve(items()), "best")


def test_curve_csv_and_plot(tmp_path):
    points = oos.curve(items(), 0.1)
    csv_path = oos.write_curve_csv(points, tmp_path / "curve.csv")
    assert (
        csv_path.read_text().splitlines()[0]
        == "threshold,in_scope_accuracy,oos_recall,oos_precision,fallback_rate"
    )
    assert len(csv_path.read_text().splitlines()) == 12
    png = oos.plot_curve({"validation": points}, 0.5, tmp_path / "curve.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
