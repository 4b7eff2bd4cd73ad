"""The NLU stages of the default `dvc repro` (shared session run): threshold chosen on validation and
written into the served config, evaluation outputs, registry champion served, benchmark results."""

from __future__ import annotations

import csv
import json

import mlflow
import pytest
import yaml

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def results(pipeline_run, name):
    return json.loads((pipeline_run.root / "nlu" / "results" / name).read_text())


def test_threshold_is_chosen_on_validation_and_served(pipeline_run):
    choice = results(pipeline_run, "threshold.json")
    rule = yaml.safe_load((pipeline_run.root / "params.yaml").read_text())["oos"]["rule"]
    assert 0.0 <= choice["threshold"] <= 1.0 and choice["rule"] == rule
    assert choice["validation_n_oos"] > 0  # the bot's data has out_of_scope examples in validation
    # the confidences it was chosen on, against the accuracy (nlu.evaluation.calibration_report)
    assert 0 <= choice["validation_ece"] < 0.2 and choice["validation_nll"] > 0
    assert 0 < choice["validation_top1_accuracy"] <= 1 and 0 < choice["validation_mean_confidence"] <= 1
    config = yaml.safe_load((pipeline_run.root / "nlu" / "build" / "config.yml").read_text())
    (fallback,) = [c for c in config["pipeline"] if c["name"] == "FallbackClassifier"]
    assert fallback["threshold"] == choice["threshold"]
    assert any(
        c["name"].endswith("OnnxSentenceFeaturizer") and len(c["encoder_sha256"]) == 64
        for c in config["pipeline"]
    )
    rows = list(csv.DictReader((pipeline_run.root / "nlu" / "results" / "threshold_curve.csv").open()))
    assert len(rows) == 101 and {"in_scope_accuracy", "oos_recall"} <= set(rows[0])
    validation = (pipeline_run.root / "nlu" / "build" / "split" / "validation" / "test_data.yml").read_text()
    test = (pipeline_run.root / "nlu" / "build" / "split" / "test_data.yml").read_text()
    assert validation and test and validation != test


def test_evaluation_outputs(pipeline_run):
    metrics = results(pipeline_run, "metrics.json")
    assert metrics["intent_macro_f1"] > 0.8  # ours on the bot's held-out split (light reaches ~0.83)
    assert 0 < metrics["latency_p50_ms"] <= metrics["latency_p95_ms"]
    assert {"entity_f1", "in_scope_accuracy", "oos_recall", "in_scope_accuracy_no_threshold"} <= set(metrics)
    reports = pipeline_run.root / "nlu" / "results" / "reports"
    for name in (
        "intent_report.csv",
        "entity_report.json",
        "misclassified.csv",
        "intent_confusion_matrix.png",
    ):
        assert (reports / name).exists(), name
    assert results(pipeline_run, "encoder.json")["cosine_min_fp32"] >= 0.999


def test_champion_is_registered_and_served(pipeline_run):
    decision = results(pipeline_run, "promotion.json")
    assert decision["promoted"] and decision["champion_version"] == decision["version"] == 1
    assert results(pipeline_run, "registry.json")["version"] == 1
    served = pipeline_run.root / "nlu" / "serving" / "model.tar.gz"
    assert served.read_bytes() == (pipeline_run.root / "nlu" / "models" / "switchboard.tar.gz").read_bytes()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{pipeline_run.root / 'mlflow.db'}")
    champion = client.get_model_version_by_alias("switchboard-nlu", "champion")
    train_run = client.get_run(champion.run_id)
    assert train_run.data.tags["stage"] == "train_nlu"
    assert (
        float(champion.tags["metric.intent_macro_f1"])
        == results(pipeline_run, "metrics.json")["intent_macro_f1"]
    )


def test_default_benchmark_runs_the_baseline_on_the_bots_split(pipeline_run):
    bench = results(pipeline_run, "benchmark.json")
    assert (bench["dataset"], bench["config"]) == ("bot", "light")
    assert bench["n_test"] == results(pipeline_run, "metrics.json")["n_test"]
    assert 0.0 <= bench["oos_recall"] <= 1.0 and "threshold" in bench


def test_intent_encoders_are_the_configs_and_the_validation_model_has_its_own(pipeline_run):
    """finetune_encoder's folders feed the two intent models: the served config's encoder kind, fine-tuned on each
    model's own training data, or copies of export_encoder's MiniLM."""
    from nlu.finetune import encoder_kind
    from nlu.training import encoder_fingerprint

    root = pipeline_run.root
    params = yaml.safe_load((root / "params.yaml").read_text())
    config = params["train_nlu"]["config"]
    kind = encoder_kind(root / "nlu" / "configs" / f"{config}.yml")
    figures = results(pipeline_run, "finetune.json")
    assert figures["encoder"] == kind
    encoders = root / "nlu" / "build" / "intent_encoder"
    for name, rendered in (
        ("train", "nlu/build/config.yml"),
        ("validation", "nlu/build/threshold/config.yml"),
    ):
        pipeline = yaml.safe_load((root / rendered).read_text())["pipeline"]
        (featurizer,) = [c for c in pipeline if c["name"].endswith("OnnxSentenceFeaturizer")]
        assert featurizer["model_dir"] == f"nlu/build/intent_encoder/{name}"
        assert featurizer["encoder_sha256"] == encoder_fingerprint(encoders / name)
    frozen = encoder_fingerprint(root / "nlu" / "build" / "encoder")
    if kind == "finetuned":
        steps = params["finetune_encoder"]["max_steps"]  # the test run's few (tests.conftest.TEST_FINETUNE)
        assert steps is None or figures["train"]["steps"] == figures["validation"]["steps"] == steps
        assert figures["train"]["cosine_min_fp32"] >= 0.999
        assert figures["train"]["examples"] > figures["validation"]["examples"]
        assert len({frozen, *(encoder_fingerprint(encoders / n) for n in ("train", "validation"))}) == 3
    else:
        assert {encoder_fingerprint(encoders / n) for n in ("train", "validation")} == {frozen}
