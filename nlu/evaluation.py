"""Evaluate a trained model on held-out NLU data (``rasa test nlu``) and summarise the results."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from nlu.rasa_runner import run_rasa


def run_nlu_test(model: Path, test_data: Path, out_dir: Path) -> float:
    """Run ``rasa test nlu`` writing Rasa's reports to ``out_dir``; return seconds taken."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    run_rasa(["test", "nlu", "--model", str(model), "--nlu", str(test_data), "--out", str(out_dir),
              "--successes"])
    return time.perf_counter() - start


def predictions(report_dir: Path) -> list[dict[str, Any]]:
    """Every test example with its true and predicted intent (from Rasa's successes and errors files)."""
    rows = []
    for name in ("intent_successes.json", "intent_errors.json"):
        path = report_dir / name
        for item in json.loads(path.read_text()) if path.exists() else []:
            prediction = item.get("intent_prediction") or {}
            rows.append({
                "text": item["text"],
                "actual": item["intent"],
                "predicted": prediction.get("name") or "None",
                "confidence": round(float(prediction.get("confidence") or 0.0), 4),
            })
    return sorted(rows, key=lambda r: (r["actual"], r["text"]))


def summarise(report_dir: Path) -> dict[str, Any]:
    """Headline metrics from Rasa's intent and entity reports."""
    intent = json.loads((report_dir / "intent_report.json").read_text())
    metrics: dict[str, Any] = {
        "intent_accuracy": round(intent["accuracy"], 4),
        "intent_macro_f1": round(intent["macro avg"]["f1-score"], 4),
        "intent_weighted_f1": round(intent["weighted avg"]["f1-score"], 4),
        "n_test": int(intent["macro avg"]["support"]),
    }
    entity_reports = sorted(report_dir.glob("*EntityExtractor_report.json"))
    for path in entity_reports:
        report = json.loads(path.read_text())
        avg = report.get("micro avg") or report.get("weighted avg") or {}
        metrics[f"entity_f1_{path.name.split('_')[0]}"] = round(avg.get("f1-score", 0.0), 4)
    return metrics


def write_predictions_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["actual", "predicted", "confidence", "text"])
        writer.writeheader()
        writer.writerows(rows)
    return path
