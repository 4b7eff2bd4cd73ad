"""MLflow metric names: one scheme for every stage (``<stage>/<key.path>``), so the MLflow UI compares the runs
of a stage across commits and groups each stage's charts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipelines._common import METRIC_NAME, metric_names

ROOT = Path(__file__).resolve().parents[2]


def test_nested_figures_are_named_by_stage_and_key_path():
    metrics = {
        "task_completion": 0.8,
        "frozen": {
            "turns": 12,
            "latency_ms": {"knowledge": {"p50": 41.5}},
            "confusion": {"skill": {"skill": 3}},
        },
        "retriever": "hybrid",  # text: not a metric
        "promoted": True,  # booleans are not figures either
        "ragas": {"judge": "none", "faithfulness": None, "rouge_l": float("nan")},
    }
    assert metric_names("evaluate_bot", metrics, skip=("confusion",)) == {
        "evaluate_bot/task_completion": 0.8,
        "evaluate_bot/frozen.turns": 12.0,
        "evaluate_bot/frozen.latency_ms.knowledge.p50": 41.5,
    }


@pytest.mark.parametrize("key", ["tiered+cache", "hit rate", "hit@1"])
def test_a_key_mlflow_cannot_take_is_refused(key):
    with pytest.raises(ValueError, match="does not follow <stage>/<key.path>"):
        metric_names("compare_policies", {key: 1.0})


def test_every_stage_logs_its_metrics_through_the_scheme():
    """No stage calls ``mlflow.log_metric(s)`` itself: ``pipelines._common.log_metrics`` names them all."""
    offenders = []
    for path in sorted((ROOT / "pipelines").glob("*.py")):
        if path.name == "_common.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"log_metric", "log_metrics"}
                and isinstance(node.value, ast.Name)
                and node.value.id == "mlflow"
            ):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


@pytest.mark.pipeline
@pytest.mark.slow
def test_the_pipelines_runs_follow_the_scheme(pipeline_run):
    """Every metric of every stage's run in the project's store is ``<its stage>/<key path>``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{pipeline_run.root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("switchboard").experiment_id])
    assert runs
    wrong = [
        (run.data.tags["stage"], name)
        for run in runs
        for name in run.data.metrics
        if not (METRIC_NAME.match(name) and name.startswith(f"{run.data.tags['stage']}/"))
    ]
    assert wrong == []
    named = {name for run in runs for name in run.data.metrics}
    assert {
        "evaluate_nlu/intent_macro_f1",
        "evaluate_bot/frozen.task_completion",
        "evaluate_rag/mrr",
    } <= named
