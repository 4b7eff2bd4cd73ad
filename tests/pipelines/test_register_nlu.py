"""register_nlu: real MLflow registry (SQLite) — first model is champion, a worse one stays challenger
and is not served, a better one is promoted and served."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import yaml

from tests.conftest import ROOT, guarded_env

NAME = "switchboard-nlu"


def log_model(project: Path, content: bytes) -> Path:
    """What train_nlu does: log a model tarball to a run, write mlflow_run.json."""
    models = project / "models"
    models.mkdir(exist_ok=True)
    model = models / "switchboard.tar.gz"
    model.write_bytes(content)
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("switchboard") or mlflow.get_experiment(
        mlflow.create_experiment("switchboard", artifact_location=(project / "mlartifacts").as_uri())
    )
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.log_artifact(str(model), "rasa_model")
        info = {
            "run_id": run.info.run_id,
            "artifact_path": "rasa_model/switchboard.tar.gz",
            "artifact_uri": f"{mlflow.get_artifact_uri('rasa_model')}/switchboard.tar.gz",
        }
    (models / "mlflow_run.json").write_text(json.dumps(info))
    return models / "mlflow_run.json"


def stage(project: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=project,
        env=guarded_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def register(project: Path, run_info: Path, f1: float, recall: float, task_completion: float = 0.9,
             cost: float = 0.01) -> dict:  # fmt: skip
    """register_nlu, then promote_nlu with these NLU figures and bot-level figures of the frozen set."""
    (project / "metrics.json").write_text(json.dumps({"intent_macro_f1": f1, "oos_recall": recall}))
    bot = {"task_completion": task_completion, "correct_containment": 0.7, "cost_per_conversation": cost}
    (project / "bot.json").write_text(
        json.dumps({"llm": "none", "frozen": bot, "added": {"task_completion": 0}})
    )
    stage(project, "pipelines.register_nlu", "--run-info", str(run_info), "--metrics",
          str(project / "metrics.json"), "--challenger", str(project / "serving" / "challenger.tar.gz"),
          "--out", str(project / "registry.json"))  # fmt: skip
    registered = json.loads((project / "registry.json").read_text())
    stage(project, "pipelines.promote_nlu", "--registry", str(project / "registry.json"), "--nlu-metrics",
          str(project / "metrics.json"), "--bot-metrics", str(project / "bot.json"), "--serve",
          str(project / "serving" / "model.tar.gz"), "--out", str(project / "promotion.json"))  # fmt: skip
    decision = json.loads((project / "promotion.json").read_text())
    assert decision["version"] == registered["version"]
    return decision


def test_gate_promotes_only_models_that_are_no_worse(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["register_nlu"] = {"model_name": NAME}
    params["promote_nlu"] = {
        "bot_set": "frozen",
        "gate": {
            "intent_macro_f1": {"max_drop": 0.01},
            "oos_recall": {"max_drop": 0.01},
            "task_completion": {"max_drop": 0.02},
            "cost_per_conversation": {"max_rise": 0.10},
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    served = tmp_path / "serving" / "model.tar.gz"
    canary = tmp_path / "serving" / "challenger.tar.gz"

    first = register(tmp_path, log_model(tmp_path, b"model one"), 0.90, 0.80)
    assert first["promoted"] and first["champion_version"] == 1
    assert served.read_bytes() == b"model one" and canary.read_bytes() == b"model one"

    worse = register(tmp_path, log_model(tmp_path, b"model two"), 0.95, 0.70)  # recall 10 points worse
    assert not worse["promoted"] and worse["champion_version"] == 1
    assert served.read_bytes() == b"model one"
    assert canary.read_bytes() == b"model two"  # the refused model is what the canary share gets
    assert any("oos_recall" in reason and "refused" in reason for reason in worse["reasons"])

    bot_worse = register(tmp_path, log_model(tmp_path, b"model three"), 0.90, 0.80, task_completion=0.8)
    assert not bot_worse["promoted"] and served.read_bytes() == b"model one"
    assert any("task_completion" in r and "refused" in r for r in bot_worse["reasons"])

    dearer = register(tmp_path, log_model(tmp_path, b"model four"), 0.90, 0.80, cost=0.0115)  # +15 %
    assert not dearer["promoted"] and any(
        "cost_per_conversation" in r and "refused" in r for r in dearer["reasons"]
    )

    within = register(tmp_path, log_model(tmp_path, b"model five"), 0.895, 0.80, 0.89, 0.0105)  # tolerances
    assert within["promoted"] and served.read_bytes() == b"model five" == canary.read_bytes()

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "5"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "5"
    assert client.get_model_version(NAME, "2").tags["gate"] == "refused"
    assert float(client.get_model_version(NAME, "5").tags["bot.task_completion"]) == 0.89
    shutil.rmtree(tmp_path / "mlartifacts")


def test_the_gate_compares_rule_by_rule():
    from pipelines.promote_nlu import compare, gate

    rules = {
        "intent_macro_f1": {"max_drop": 0.01},
        "cost_per_conversation": {"max_rise": 0.1},
        "oos_recall": {},
    }
    new = {"intent_macro_f1": 0.90, "cost_per_conversation": 0.012}
    old = {"intent_macro_f1": 0.905, "cost_per_conversation": 0.010, "oos_recall": 0.9}
    rows = {row["figure"]: row for row in compare(new, old, rules)}
    assert rows["intent_macro_f1"] == {"figure": "intent_macro_f1", "challenger": 0.90, "champion": 0.905,
                                       "diff": -0.005, "limit": "drop at most 0.01", "ok": True}  # fmt: skip
    assert (
        rows["cost_per_conversation"]["ok"] is False
        and rows["cost_per_conversation"]["limit"] == "at most +10%"
    )
    assert rows["oos_recall"]["ok"] is None and rows["oos_recall"]["diff"] is None  # no challenger figure
    promote, reasons = gate(new, old, rules)
    assert (
        not promote and "cost_per_conversation: 0.0120 vs champion 0.0100 (refused: at most +10%)" in reasons
    )
    assert [row["champion"] for row in compare(new, None, rules)] == [None, None, None]
