"""test_stories: the conversation set as Rasa test stories, run by `rasa test core` in the pipeline run; bad
input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import pytest
import yaml

from tests.conftest import ROOT, guarded_env


@pytest.mark.pipeline
def test_the_pipeline_runs_the_conversation_set_as_rasa_test_stories(pipeline_run):
    root = pipeline_run.root
    metrics = json.loads((root / "nlu" / "results" / "stories.json").read_text())
    stories = yaml.safe_load((root / "nlu" / "build" / "test_stories.yml").read_text())["stories"]
    # every story written was tested by Rasa, and the figures are Rasa's
    assert metrics["stories"] == metrics["stories_tested"] == len(stories) > 0
    assert 0 < metrics["stories_passed"] <= metrics["stories_tested"]
    assert metrics["story_accuracy"] == pytest.approx(metrics["stories_passed"] / metrics["stories_tested"])
    assert metrics["story_turns"] < metrics["turns"] and metrics["conversations"] >= len(stories)
    report = json.loads((root / "nlu" / "results" / "stories" / "story_report.json").read_text())
    assert report["accuracy"] == metrics["action_accuracy"] and metrics["actions"] > len(stories)
    # small talk and order lookups are the model's own rules: those stories pass
    failed = (root / "nlu" / "results" / "stories" / "failed_test_stories.yml").read_text()
    for passing in ("acme-chitchat-are-you-a-bot", "acme-track-then-correct-order-id"):
        assert passing in {s["story"] for s in stories} and f"story: {passing} " not in failed
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("switchboard").experiment_id], "tags.stage = 'test_stories'"
    )
    assert run.data.metrics["test_stories/stories_passed"] == metrics["stories_passed"]
    assert run.data.metrics["test_stories/action_accuracy"] == pytest.approx(metrics["action_accuracy"])


def run_stage(tmp_path, conversations, model):
    return subprocess.run(
        [sys.executable, "-m", "pipelines.test_stories", "--model", str(model), "--domain",
         str(ROOT / "nlu" / "domain.yml"), "--conversations", str(conversations), "--stories",
         str(tmp_path / "test_stories.yml"), "--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json")],
        cwd=ROOT, env=guarded_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_malformed_conversation_file_stops_the_stage_with_one_line(tmp_path):
    bad = tmp_path / "conversations.yml"
    bad.write_text(
        "version: 1\nconversations:\n  - id: broken-one\n    tenant: acme\n    user: u1\n    turns:\n"
        "      - user: hi\n        expect: {handler: chitchat, intent: greet}\n"
        "      - user: where is my order\n        expect: {handler: skill, intent: where_is_it}\n"
    )
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"not loaded: the file is checked first")
    result = run_stage(tmp_path, bad, model)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert (
        str(bad) in lines[0] and "conversation broken-one, turn 2" in lines[0] and "where_is_it" in lines[0]
    )
    assert not (tmp_path / "test_stories.yml").exists()


def test_a_missing_model_stops_the_stage_with_one_line(tmp_path):
    result = run_stage(tmp_path, ROOT / "nlu" / "conversations" / "frozen.yml", tmp_path / "missing.tar.gz")
    assert result.returncode == 2
    assert result.stderr.strip() == f"test_stories: error: no model at {tmp_path / 'missing.tar.gz'}"
