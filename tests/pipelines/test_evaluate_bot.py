"""evaluate_bot: the conversation set played through the served stack in the pipeline run; bad input exits 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import mlflow
import pytest

from tests.conftest import ROOT, TEST_SLICE, guarded_env

BOT = ("nlu", "results", "bot")


@pytest.mark.pipeline
def test_the_pipeline_plays_the_slice_through_the_served_stack(pipeline_run):
    results = pipeline_run.root.joinpath(*BOT)
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["llm"] == "none" and metrics["notes"] == ["no LLM endpoint: LLM tiers not evaluated"]
    frozen = metrics["frozen"]
    assert frozen["conversations"] == len(TEST_SLICE) and metrics["added"]["conversations"] == 0
    rows = list(csv.DictReader((results / "turns.csv").open()))
    assert len(rows) == frozen["turns"] == metrics["all"]["turns"] > 0
    assert {r["conversation"] for r in rows} == set(TEST_SLICE)
    # every turn was matched with its turn record: the handler the bot really used, never "no record"
    assert all("no turn record" not in r["failures"] for r in rows)
    assert sum(r["handler"] == r["expected_handler"] for r in rows) / len(rows) == frozen["handler_accuracy"]
    assert (results / "confusion.png").stat().st_size > 0
    assert "no LLM endpoint" in (results / "failing.md").read_text()
    gaps = (results / "gaps.md").read_text()  # the failed answerable turns, replayed against the index
    # what retrieval read is recorded: the message, or for a follow-up the conversation's topic then the message
    # (acme-out-of-scope-mix's pancake question is read with the topic); the gap report replays that
    sent = {(r["conversation"], r["turn"]): r["sent"] for r in rows}
    records = json.loads((results / "records.json").read_text())["records"]
    read = {tuple(r["correlation_id"].split(".")[1:]): (r["rule"], r["question"]) for r in records}
    knowledge = {  # typed messages (a clicked suggestion is read as the words it clarifies)
        key: question
        for key, (rule, question) in read.items()
        if rule.startswith(("knowledge", "unsure")) and not sent[key].startswith("/")
    }
    assert knowledge and all(question == " ".join(sent[key].split()) for key, question in knowledge.items())
    followups = {key: question for key, (rule, question) in read.items() if rule.startswith("followup:")}
    assert followups and all(
        question.endswith(" ".join(sent[key].split())) and len(question) > len(sent[key])
        for key, question in followups.items()
    )
    assert gaps.startswith("# Knowledge gaps (evaluate_bot)") and "| not in the articles |" in gaps
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{pipeline_run.root / 'mlflow.db'}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("switchboard").experiment_id], "tags.stage = 'evaluate_bot'"
    )
    assert run.data.metrics["evaluate_bot/frozen.handler_accuracy"] == frozen["handler_accuracy"]
    promotion = json.loads(pipeline_run.root.joinpath("nlu", "results", "promotion.json").read_text())
    assert promotion["promoted"] and promotion["bot_set"] == "frozen"


def test_a_malformed_conversation_file_stops_the_stage_with_one_line(tmp_path):
    bad = tmp_path / "conversations.yml"
    bad.write_text(
        "version: 1\nconversations:\n  - id: broken-one\n    tenant: acme\n    user: u1\n    turns:\n"
        "      - user: hi\n        expect: {handler: chitchat, intent: greet}\n"
        "      - user: where is my order\n        expect: {handler: two_stage_fallback, intent: track_order}\n"
    )
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"not started: the file is checked first")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.evaluate_bot", "--model", str(model), "--index",
         str(ROOT / "knowledge" / "index"), "--domain", str(ROOT / "nlu" / "domain.yml"), "--conversations",
         str(bad), "--out", str(tmp_path / "out")],
        cwd=ROOT, env=guarded_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert (
        str(bad) in lines[0]
        and "conversation broken-one, turn 2" in lines[0]
        and "two_stage_fallback" in lines[0]
    )
