"""The whole DVC pipeline in a temporary copy of the project: outputs, metrics, MLflow runs, no-op rerun."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

STAGES = [
    "validate_nlu",
    "split_nlu",
    "finetune_encoder",
    "train_nlu",
    "evaluate_nlu",
    "build_index",
    "evaluate_rag",
    "register_nlu",
    "evaluate_bot",
    "promote_nlu",
    "compare_policies",
    "render_charts",
]


def test_pipeline_writes_models_indexes_and_metrics(pipeline_run):
    root = pipeline_run.root
    assert (root / "nlu" / "models" / "switchboard.tar.gz").stat().st_size > 100_000
    assert (root / "knowledge" / "index" / "manifest.json").exists()
    nlu = json.loads((root / "nlu" / "results" / "metrics.json").read_text())
    assert 0.0 <= nlu["intent_accuracy"] <= 1.0 and nlu["n_test"] > 0
    assert nlu["intent_accuracy"] > 0.5  # far above chance (1/26); the NLU issue sets the real bar
    header = (root / "nlu" / "results" / "predictions.csv").read_text().splitlines()[0]
    assert header.startswith("actual,predicted")
    assert (root / "nlu" / "results" / "reports" / "intent_confusion_matrix.png").exists()
    rag = json.loads((root / "knowledge" / "results" / "metrics.json").read_text())
    assert rag["mrr"] > 0.3
    assert rag["llm"] == "none" and rag["cut_off"] == pytest.approx(0.2977, abs=0.05)  # the index's, from dev
    policies = json.loads((root / "nlu" / "results" / "policies" / "policies.json").read_text())
    names = [row["policy"] for row in policies["rows"]]
    assert names == [
        f"{p}{c}" for p in ("tiered", "tier0_only", "always_tier1", "always_tier2") for c in ("", "+cache")
    ]
    assert policies["notes"] == ["no LLM endpoint: LLM tiers not evaluated"]
    # offline every policy is served by tier 0: the same answers, nothing spent
    assert {row["task_completion"] for row in policies["rows"]} == {policies["rows"][0]["task_completion"]}
    assert all(row["cost_per_1000_conversations"] == 0 for row in policies["rows"])
    assert (root / "nlu" / "results" / "policies" / "pareto.png").stat().st_size > 0


def test_every_stage_is_tracked_in_mlflow(pipeline_run):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{pipeline_run.root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("switchboard")
    runs = client.search_runs([experiment.experiment_id])
    by_stage = {run.data.tags["stage"]: run for run in runs}
    assert set(STAGES) - {"split_nlu"} <= set(by_stage)
    commit = by_stage["train_nlu"].data.tags["git_commit"]
    assert len(commit) == 40
    assert all(run.data.tags["git_commit"] == commit for run in runs)
    assert by_stage["train_nlu"].data.params["fallback_threshold"] == "0.4"
    assert "evaluate_nlu/intent_accuracy" in by_stage["evaluate_nlu"].data.metrics
    artifacts = [a.path for a in client.list_artifacts(by_stage["train_nlu"].info.run_id, "rasa_model")]
    assert artifacts == ["rasa_model/switchboard.tar.gz"]


def test_second_repro_is_a_no_op(pipeline_run):
    if pipeline_run.reused:
        pytest.skip("SWITCHBOARD_TEST_PIPELINE_ROOT reuses a built project: no repro ran in this session")
    assert pipeline_run.second.returncode == 0
    out = pipeline_run.second.stdout + pipeline_run.second.stderr
    assert "up to date" in out
    assert "Running stage" not in out
