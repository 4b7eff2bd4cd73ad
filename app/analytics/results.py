"""The evaluation results the DVC pipeline writes, read for the evaluation page.

Where they are comes from ``dvc.yaml``'s ``vars.paths`` (the one place paths are written), relative to the
project root, i.e. the folder of ``params.yaml``. Every reader returns None for a missing file, so the page
can say which ``dvc repro`` stage makes it; a file that exists but cannot be read raises
:class:`ResultUnreadable` with the path and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

DEFAULT_PATHS = {
    "nlu_results": "nlu/results",
    "rag_results": "knowledge/results",
    "bot_results": "nlu/results/bot",
    "policy_results": "nlu/results/policies",
}
BENCHMARK_RESULTS = "benchmarks/results"


class ResultUnreadable(Exception):
    """A result file exists but is not valid JSON/CSV of the expected shape."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} cannot be read: {reason}")
        self.path = path


@dataclass(frozen=True)
class ResultPaths:
    """The result locations of one project root."""

    root: Path
    nlu: Path
    rag: Path
    benchmarks: Path
    bot: Path  # evaluate_bot: the conversation test set through the served stack
    policies: Path  # compare_policies

    @classmethod
    def from_root(cls, root: Path, overrides: Mapping[str, str] | None = None) -> ResultPaths:
        """Read ``vars.paths`` of ``root/dvc.yaml`` (defaults when it is missing or has none); ``overrides``
        (``{"nlu_results": "nlu/results", ...}``, relative to ``root``) win, as a stage's arguments do."""
        paths = dict(DEFAULT_PATHS)
        try:
            spec = yaml.safe_load((root / "dvc.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            spec = {}
        for entry in spec.get("vars") or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("paths"), Mapping):
                paths.update({k: str(v) for k, v in entry["paths"].items() if k in DEFAULT_PATHS})
        if unknown := set(overrides or {}) - set(DEFAULT_PATHS):
            raise ValueError(
                f"unknown result paths {sorted(unknown)}: expected some of {sorted(DEFAULT_PATHS)}"
            )
        paths.update({k: str(v) for k, v in (overrides or {}).items()})
        return cls(
            root,
            root / paths["nlu_results"],
            root / paths["rag_results"],
            root / BENCHMARK_RESULTS,
            root / paths["bot_results"],
            root / paths["policy_results"],
        )


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file does not exist."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultUnreadable(path, str(exc)) from exc
    if not isinstance(value, dict):
        raise ResultUnreadable(path, "expected a JSON object")
    return value


def read_csv(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame | None:
    """The CSV table in ``path`` with at least the ``required`` columns; None when it does not exist."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ResultUnreadable(path, str(exc)) from exc
    if missing := [c for c in required if c not in frame.columns]:
        raise ResultUnreadable(path, f"missing columns {missing}")
    return frame


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metrics -> ``{"a.b": value}`` of the scalar leaves (lists are shown as text)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = ", ".join(map(str, value))
        else:
            flat[name] = value
    return flat


def metrics_table(values: Mapping[str, Any]) -> pd.DataFrame:
    """A two-column table (``metric``, ``value``) of the flattened metrics, values as text."""
    flat = flatten(values)
    return pd.DataFrame({"metric": list(flat), "value": [_text(v) for v in flat.values()]})


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def confusions(predictions: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The most frequent (actual, predicted) mistakes of ``predictions.csv`` (``served`` when present,
    i.e. after the out-of-scope threshold, else ``predicted``)."""
    column = "served" if "served" in predictions.columns else "predicted"
    wrong = predictions[predictions["actual"].astype(str) != predictions[column].astype(str)]
    if wrong.empty:
        return pd.DataFrame(columns=["actual", "predicted", "count"])
    counts = wrong.groupby(["actual", column]).size().rename("count").reset_index()
    counts = counts.rename(columns={column: "predicted"})
    return counts.sort_values(["count", "actual"], ascending=[False, True]).head(top).reset_index(drop=True)


def per_intent_accuracy(predictions: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and support per actual intent (``served`` when present, else ``predicted``)."""
    column = "served" if "served" in predictions.columns else "predicted"
    correct = predictions["actual"].astype(str) == predictions[column].astype(str)
    grouped = correct.groupby(predictions["actual"])
    return pd.DataFrame({"accuracy": grouped.mean(), "support": grouped.size()}).reset_index()


def benchmark_results(paths: ResultPaths) -> pd.DataFrame | None:
    """One row per benchmark JSON (``nlu/results/benchmark.json`` and ``benchmarks/results/**/*.json``)
    with its ``file`` and its scalar figures; None when there are none."""
    files = [paths.nlu / "benchmark.json", *sorted(paths.benchmarks.rglob("*.json"))]
    rows = []
    for path in files:
        data = read_json(path)
        if data is None:
            continue
        flat = {k: v for k, v in flatten(data).items() if not isinstance(v, str) or len(v) < 80}
        rows.append({"file": str(path.relative_to(paths.root)), **flat})
    return pd.DataFrame(rows) if rows else None


def shares_table(shares: Mapping[str, Any], label: str) -> pd.DataFrame:
    """``{"skill": 0.4, ...}`` -> a (``label``, ``share``) table."""
    return pd.DataFrame({label: [str(k) for k in shares], "share": [float(v) for v in shares.values()]})
