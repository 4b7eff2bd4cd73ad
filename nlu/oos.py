"""Out-of-scope detection: the threshold curve and the rule that picks the served threshold.

A message is answered "out of scope" when the classifier ranks ``out_of_scope`` first, or when Rasa's
FallbackClassifier fires: top confidence below ``threshold``, or the top two closer than
``ambiguity_threshold``. :func:`decide` reproduces FallbackClassifier's rule on the classifier's own
ranking, so the whole curve comes from one set of predictions. The threshold is chosen on validation
data only, by a rule from params.yaml (:func:`choose_threshold`):

- ``balanced``: maximise the mean of in-scope accuracy and OOS recall (as the datasets README does);
- ``min_recall``: the highest in-scope accuracy with OOS recall >= ``min_oos_recall`` (if no threshold
  reaches it, the one with the highest recall);
- ``fixed``: ``fixed_threshold`` (``train_nlu.fallback_threshold``), also used when the validation data
  has no out-of-scope examples to trade against.
Ties (a plateau of equally good thresholds, common on small validation sets) go to the highest tied
threshold: when validation cannot tell them apart, the bot asks (two-stage fallback) rather than guesses.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OOS_INTENT = "out_of_scope"
FALLBACK = "nlu_fallback"
RULES = ("balanced", "min_recall", "fixed")


@dataclass(frozen=True)
class Scored:
    """One evaluated message: its gold intent and the classifier's ranking [(intent, confidence), ...]."""

    gold: str
    ranking: tuple[tuple[str, float], ...]


def scored(rows: Iterable[dict[str, Any]]) -> list[Scored]:
    """From prediction rows (``nlu.rasa_tools predict`` JSON lines)."""
    return [Scored(r["intent"], tuple((str(n), float(c)) for n, c in r["ranking"])) for r in rows]


def decide(ranking: Sequence[tuple[str, float]], threshold: float, ambiguity_threshold: float = 0.0) -> str:
    """The intent the served model answers with: FallbackClassifier's rule applied to the ranking."""
    if not ranking:
        return FALLBACK
    top, confidence = ranking[0]
    if confidence < threshold:
        return FALLBACK
    if ambiguity_threshold > 0 and len(ranking) > 1 and confidence - ranking[1][1] <= ambiguity_threshold:
        return FALLBACK
    return top


def is_oos(intent: str, oos_intent: str = OOS_INTENT) -> bool:
    return intent in (oos_intent, FALLBACK)


def point(
    items: Sequence[Scored], threshold: float, ambiguity_threshold: float = 0.0, oos_intent: str = OOS_INTENT
) -> dict[str, float]:
    """In-scope accuracy, OOS recall (and precision) and fallback rate at one threshold."""
    in_total = in_correct = oos_total = oos_caught = flagged = flagged_oos = 0
    for item in items:
        answer = decide(item.ranking, threshold, ambiguity_threshold)
        flagged_now = is_oos(answer, oos_intent)
        flagged += flagged_now
        if item.gold == oos_intent:
            oos_total += 1
            oos_caught += flagged_now
            flagged_oos += flagged_now
        else:
            in_total += 1
            in_correct += answer == item.gold
    return {
        "threshold": round(float(threshold), 4),
        "in_scope_accuracy": in_correct / in_total if in_total else float("nan"),
        "oos_recall": oos_caught / oos_total if oos_total else float("nan"),
        "oos_precision": flagged_oos / flagged if flagged else float("nan"),
        "fallback_rate": flagged / len(items) if items else float("nan"),
        "n_in_scope": in_total,
        "n_oos": oos_total,
    }


def curve(
    items: Sequence[Scored],
    step: float = 0.01,
    ambiguity_threshold: float = 0.0,
    oos_intent: str = OOS_INTENT,
) -> list[dict[str, float]]:
    """:func:`point` at every threshold from 0 to 1 in ``step`` increments."""
    n = round(1 / step)
    return [point(items, i * step, ambiguity_threshold, oos_intent) for i in range(n + 1)]


def choose_threshold(
    points: Sequence[dict[str, float]], rule: str, min_oos_recall: float = 0.7, fixed_threshold: float = 0.4
) -> tuple[float, str]:
    """Apply the rule to a validation curve; return (threshold, how it was chosen)."""
    if rule not in RULES:
        raise ValueError(f"unknown threshold rule {rule!r}: expected one of {', '.join(RULES)}")
    if rule == "fixed":
        return float(fixed_threshold), "fixed"
    if not points or not points[0]["n_oos"]:
        return float(fixed_threshold), "fixed (no out-of-scope examples in the validation data)"
    if rule == "balanced":
        return _highest_of_best(
            points, lambda p: (p["in_scope_accuracy"] + p["oos_recall"]) / 2
        ), "balanced: max mean of in-scope accuracy and OOS recall"
    reaching = [p for p in points if p["oos_recall"] >= min_oos_recall]
    if reaching:
        return _highest_of_best(
            reaching, lambda p: p["in_scope_accuracy"]
        ), f"min_recall: max in-scope accuracy with OOS recall >= {min_oos_recall}"
    return _highest_of_best(
        points, lambda p: (p["oos_recall"], p["in_scope_accuracy"])
    ), f"min_recall: no threshold reaches OOS recall {min_oos_recall}; highest recall"


def _highest_of_best(points: Sequence[dict[str, float]], score: Any) -> float:
    """The highest threshold among those with the best score (rounded, so float noise makes no ties)."""

    def key(p: dict[str, float]) -> Any:
        value = score(p)
        return tuple(round(v, 9) for v in value) if isinstance(value, tuple) else round(value, 9)

    best = max(key(p) for p in points)
    tied = sorted(p["threshold"] for p in points if key(p) == best)
    return tied[-1]


def write_curve_csv(points: Sequence[dict[str, float]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["threshold", "in_scope_accuracy", "oos_recall", "oos_precision", "fallback_rate"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for p in points:
            writer.writerow({k: round(p[k], 4) if isinstance(p[k], float) else p[k] for k in fields})
    return path


def plot_curve(curves: dict[str, Sequence[dict[str, float]]], chosen: float, path: Path, title: str) -> Path:
    """In-scope accuracy and OOS recall against the threshold (one line pair per curve), chosen marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = ["-", "--", ":"]
    for (name, points), style in zip(curves.items(), styles, strict=False):
        xs = [p["threshold"] for p in points]
        ax.plot(
            xs,
            [100 * p["in_scope_accuracy"] for p in points],
            style,
            color="tab:blue",
            label=f"in-scope accuracy ({name})",
        )
        if points and points[0]["n_oos"]:
            ax.plot(
                xs,
                [100 * p["oos_recall"] for p in points],
                style,
                color="tab:red",
                label=f"OOS recall ({name})",
            )
    ax.axvline(chosen, color="grey", linewidth=1)
    ax.annotate(f"chosen {chosen:.2f}", (chosen, 2), xytext=(4, 0), textcoords="offset points", fontsize=8)
    ax.set_xlabel("confidence threshold (FallbackClassifier)")
    ax.set_ylabel("%")
    ax.set_ylim(0, 101)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
