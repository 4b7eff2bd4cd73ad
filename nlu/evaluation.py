"""Evaluate a trained model on held-out NLU data and summarise it (main environment).

The model parses every test message exactly as the server does (``nlu.rasa_tools predict``: one message
at a time, timed); everything else is computed here from those JSON lines:

- intents: accuracy and macro F1 of the classifier's top intent (before any fallback threshold), the
  per-intent precision/recall/F1 report, the confusion matrix (PNG and ``predictions.csv`` for the DVC
  plot) and the misclassified examples;
- out-of-scope: in-scope accuracy and OOS recall of what the served model answered (FallbackClassifier
  included), and the whole threshold curve (:mod:`nlu.oos`);
- entities: span-level precision/recall/F1, exact span and type (as the published SNIPS numbers);
- calibration (:func:`calibration_report`): log-likelihood of the true intent, expected calibration error;
- parse latency p50/p95.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from app.analytics.stats import percentile
from nlu import oos

REPORT_FILES = (
    "intent_report.json",
    "intent_report.csv",
    "entity_report.json",
    "misclassified.csv",
    "intent_confusion_matrix.png",
)


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """The JSON lines written by ``nlu.rasa_tools predict``."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def top_intent(row: dict[str, Any]) -> str:
    """The classifier's first-ranked intent (before FallbackClassifier)."""
    return row["ranking"][0][0] if row["ranking"] else "None"


def served_intent(row: dict[str, Any]) -> str:
    """What the served model answered (``nlu_fallback`` when FallbackClassifier fired)."""
    return row.get("predicted") or oos.FALLBACK


def intent_report(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """scikit-learn's classification report (per intent, macro and weighted averages, accuracy)."""
    from sklearn.metrics import classification_report

    gold = [r["intent"] for r in rows]
    predicted = [top_intent(r) for r in rows]
    report = classification_report(
        gold, predicted, labels=sorted(set(gold)), output_dict=True, zero_division=0
    )
    # with a predicted label the test set lacks (an intent missing from the split, or "None" for an empty
    # ranking: top_intent is read before FallbackClassifier), scikit-learn gives a "micro avg" row instead of
    # "accuracy": the share of right predictions either way
    report["accuracy"] = (
        sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else 0.0
    )
    return report


def _spans(entities: Iterable[dict[str, Any]]) -> Counter:
    return Counter((e["start"], e["end"], e["entity"]) for e in entities)


def entity_report(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Span-level entity scores (exact start, end and type), micro-averaged and per entity type.

    None when the test data has no entity annotations.
    """
    if not any(r["entities"] for r in rows):
        return None
    per_type: dict[str, Counter] = {}

    def bump(kind: str, key: str, n: int) -> None:
        per_type.setdefault(kind, Counter())[key] += n

    for row in rows:
        gold, predicted = _spans(row["entities"]), _spans(row["predicted_entities"])
        hits = gold & predicted
        for (_, _, kind), n in hits.items():
            bump(kind, "tp", n)
        for (_, _, kind), n in (predicted - hits).items():
            bump(kind, "fp", n)
        for (_, _, kind), n in (gold - hits).items():
            bump(kind, "fn", n)

    def scores(c: Counter) -> dict[str, float]:
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1-score": f1, "support": c["tp"] + c["fn"]}

    total = sum(per_type.values(), Counter())
    report = {kind: scores(c) for kind, c in sorted(per_type.items())}
    report["micro avg"] = scores(total)
    return report


def summarise(rows: Sequence[dict[str, Any]], oos_intent: str = oos.OOS_INTENT) -> dict[str, Any]:
    """Headline metrics of one evaluation (the keys every results file shares)."""
    report = intent_report(rows)
    latencies = [float(r["latency_ms"]) for r in rows]
    metrics: dict[str, Any] = {
        "intent_accuracy": round(report["accuracy"], 4),
        "intent_macro_f1": round(report["macro avg"]["f1-score"], 4),
        "intent_weighted_f1": round(report["weighted avg"]["f1-score"], 4),
        "n_test": len(rows),
        "latency_p50_ms": round(percentile(latencies, 50), 2),
        "latency_p95_ms": round(percentile(latencies, 95), 2),
    }
    entities = entity_report(rows)
    if entities is not None:
        micro = entities["micro avg"]
        metrics |= {
            "entity_f1": round(micro["f1-score"], 4),
            "entity_precision": round(micro["precision"], 4),
            "entity_recall": round(micro["recall"], 4),
        }
    if any(r["intent"] == oos_intent for r in rows):
        in_scope = [r for r in rows if r["intent"] != oos_intent]
        out = [r for r in rows if r["intent"] == oos_intent]
        metrics |= {
            # what the served model answered, FallbackClassifier included
            "in_scope_accuracy": round(
                sum(served_intent(r) == r["intent"] for r in in_scope) / len(in_scope), 4
            ),
            "oos_recall": round(sum(oos.is_oos(served_intent(r), oos_intent) for r in out) / len(out), 4),
            # the classifier alone ("oos as a class", no threshold)
            "in_scope_accuracy_no_threshold": round(
                sum(top_intent(r) == r["intent"] for r in in_scope) / len(in_scope), 4
            ),
            "oos_recall_no_threshold": round(sum(top_intent(r) == oos_intent for r in out) / len(out), 4),
        }
    return metrics


#: A true intent the ranking does not hold (beyond ``ranking_length``) counts as this probability.
UNRANKED_PROBABILITY = 1e-6


def calibration_report(rows: Sequence[dict[str, Any]], bins: int = 10) -> dict[str, Any]:
    """How far the classifier's confidences are from its accuracy (before any fallback threshold): the mean
    negative log-likelihood of the true intent, the expected calibration error (the top confidence against
    top-1 accuracy in ``bins`` equal-width bins, weighted by their size; Guo et al., 2017), the mean top
    confidence and the top-1 accuracy, and the bins themselves (for a reliability diagram)."""
    import math

    if not rows:
        raise ValueError("no predictions to measure calibration on")
    nll, edges = 0.0, [i / bins for i in range(bins + 1)]
    filled: list[list[tuple[float, bool]]] = [[] for _ in range(bins)]
    for row in rows:
        ranking = dict((name, float(p)) for name, p in row["ranking"])
        nll -= math.log(max(ranking.get(row["intent"], 0.0), UNRANKED_PROBABILITY))
        top = float(row["ranking"][0][1]) if row["ranking"] else 0.0
        filled[min(int(top * bins), bins - 1)].append((top, top_intent(row) == row["intent"]))
    table = [
        {
            "low": edges[i],
            "high": edges[i + 1],
            "n": len(cell),
            "confidence": round(sum(c for c, _ in cell) / len(cell), 4),
            "accuracy": round(sum(ok for _, ok in cell) / len(cell), 4),
        }
        for i, cell in enumerate(filled)
        if cell
    ]
    ece = sum(b["n"] * abs(b["confidence"] - b["accuracy"]) for b in table) / len(rows)
    return {
        "nll": round(nll / len(rows), 4),
        "ece": round(ece, 4),
        "mean_confidence": round(sum(float(r["ranking"][0][1]) for r in rows if r["ranking"]) / len(rows), 4),
        "accuracy": round(sum(top_intent(r) == r["intent"] for r in rows) / len(rows), 4),
        "bins": table,
    }


def prediction_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for ``predictions.csv`` (the DVC confusion plot): true and top predicted intent per example."""
    return sorted(
        (
            {
                "actual": r["intent"],
                "predicted": top_intent(r),
                "confidence": round(r["ranking"][0][1] if r["ranking"] else 0.0, 4),
                "served": served_intent(r),
                "text": r["text"],
            }
            for r in rows
        ),
        key=lambda r: (r["actual"], r["text"]),
    )


def write_predictions_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["actual", "predicted", "confidence", "served", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_confusion(rows: Sequence[dict[str, Any]], path: Path, title: str = "Intent confusion") -> Path:
    """Confusion matrix (rows: true intent, columns: predicted), counts annotated where non-zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = sorted({r["intent"] for r in rows} | {top_intent(r) for r in rows})
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for r in rows:
        matrix[index[r["intent"]], index[top_intent(r)]] += 1
    size = max(6.0, 0.28 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    if len(labels) <= 40:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for i, j in zip(*np.nonzero(matrix), strict=False):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                fontsize=6,
                color="white" if matrix[i, j] > matrix.max() / 2 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_reports(
    rows: Sequence[dict[str, Any]], out_dir: Path, title: str = "Intent confusion"
) -> list[Path]:
    """Per-intent report (JSON + CSV), entity report, misclassified examples, confusion matrix PNG."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = intent_report(rows)
    (out_dir / "intent_report.json").write_text(json.dumps(report, indent=2) + "\n")
    with (out_dir / "intent_report.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["intent", "precision", "recall", "f1", "support"])
        for intent, scores in report.items():
            if isinstance(scores, dict) and intent not in ("macro avg", "weighted avg"):
                writer.writerow(
                    [
                        intent,
                        *(round(scores[k], 4) for k in ("precision", "recall", "f1-score")),
                        int(scores["support"]),
                    ]
                )
    entities = entity_report(rows)
    (out_dir / "entity_report.json").write_text(json.dumps(entities or {}, indent=2) + "\n")
    with (out_dir / "misclassified.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["text", "actual", "predicted", "confidence", "served", "second", "second_confidence"]
        )
        for r in sorted(rows, key=lambda r: (r["intent"], r["text"])):
            if top_intent(r) != r["intent"]:
                second = r["ranking"][1] if len(r["ranking"]) > 1 else ("", 0.0)
                writer.writerow(
                    [
                        r["text"],
                        r["intent"],
                        top_intent(r),
                        round(r["ranking"][0][1], 4),
                        served_intent(r),
                        second[0],
                        round(second[1], 4),
                    ]
                )
    plot_confusion(rows, out_dir / "intent_confusion_matrix.png", title)
    return [out_dir / name for name in REPORT_FILES]


def margin(row: dict[str, Any]) -> float:
    """Confidence of the classifier's best intent minus its runner-up's (1.0 with a single intent ranked)."""
    ranking = row["ranking"]
    if not ranking:
        return 0.0
    return round(float(ranking[0][1]) - (float(ranking[1][1]) if len(ranking) > 1 else 0.0), 4)


def served_right(row: dict[str, Any], oos_intent: str = oos.OOS_INTENT) -> bool:
    """Whether the served model answered the example right (an out-of-scope one: with a fallback)."""
    served = served_intent(row)
    return served == row["intent"] or (row["intent"] == oos_intent and oos.is_oos(served, oos_intent))


def label_next(rows: Sequence[dict[str, Any]], top: int = 20) -> list[dict[str, Any]]:
    """The held-out examples to write more training data like, most useful first: those the served model
    got wrong (:func:`served_right`), then the right ones it was least sure of (smallest :func:`margin` between
    its two best intents: margin sampling). Each with its ``actual``, ``served`` and ``runner_up`` intents."""
    scored = [
        {
            "actual": r["intent"],
            "served": served_intent(r),
            "runner_up": r["ranking"][1][0] if len(r["ranking"]) > 1 else "",
            "margin": margin(r),
            "wrong": not served_right(r),
            "text": r["text"],
        }
        for r in rows
    ]
    return sorted(scored, key=lambda r: (not r["wrong"], r["margin"], r["actual"], r["text"]))[:top]
