"""The notebooks: each says what it answers, is committed without outputs and is run by the DVC stage
``notebooks``; on a real pipeline run, the stage rendered each to HTML with its charts, and each notebook,
executed again by a kernel the test can question, computes figures that agree with the pipeline's files."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from app.lab import PARAMETERS_TAG, client_for, execution_env, inject_parameters

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_the_five_weekly_notebooks():
    assert [p.name for p in NOTEBOOKS] == [
        "01_pipeline_results.ipynb",
        "02_nlu_error_analysis.ipynb",
        "03_knowledge_failures.ipynb",
        "04_routing_cost_what_if.ipynb",
        "05_conversation_analytics.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_notebook_says_what_it_answers_takes_parameters_and_has_no_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# ") and "**Answers:**" in first.source
    tagged = [c for c in notebook.cells if PARAMETERS_TAG in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "ROOT =" in tagged[0].source and "RESULTS =" in tagged[0].source
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(
        not c.outputs and c.execution_count is None for c in code
    )  # outputs are the stage's, not git's
    assert notebook.metadata["kernelspec"]["name"] == "switchboard"


def test_the_stage_executes_every_notebook():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["notebooks"]
    for path in NOTEBOOKS:
        name = f"notebooks/{path.name}"
        assert name in stage["cmd"].split() and name in stage["deps"]


# --- on a real pipeline run --------------------------------------------------------------------------------


def results(root: Path, *parts: str) -> Any:
    path = root.joinpath(*parts)
    return json.loads(path.read_text()) if path.suffix == ".json" else path.read_text()


def run_and_ask(path: Path, root: Path, questions: dict[str, str]) -> dict[str, Any]:
    """Execute ``path`` as the stage does (parameters injected), then evaluate each expression of
    ``questions`` in the notebook's namespace (as JSON)."""
    notebook = inject_parameters(nbformat.read(path, as_version=4), {"ROOT": str(root), "RESULTS": {}})
    client = client_for(notebook, path.parent, timeout=300)
    client.execute(cleanup_kc=False, env=execution_env(root))
    try:
        wanted = {k: f"__import__('json').dumps({v}, default=str)" for k, v in questions.items()}
        reply = client.kc.execute_interactive("", user_expressions=wanted, timeout=120, store_history=False)
        answers = reply["content"]["user_expressions"]
        failed = {k: v for k, v in answers.items() if v["status"] != "ok"}
        assert not failed, failed
        return {k: json.loads(ast.literal_eval(v["data"]["text/plain"])) for k, v in answers.items()}
    finally:
        client.kc.stop_channels()
        client.km.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
@pytest.mark.pipeline
@pytest.mark.slow
def test_the_stage_rendered_the_notebook_with_its_charts(path: Path, pipeline_run):
    out = pipeline_run.root / "notebooks" / "html"
    if not (out / f"{path.stem}.html").is_file() and pipeline_run.reused:
        pytest.skip(f"{out} has no {path.stem}.html: run `dvc repro notebooks` in the reused project")
    page = (out / f"{path.stem}.html").read_text()
    assert page.count('src="data:image/png;base64,') >= 1  # the charts, inline
    assert not re.search(r"<script[^>]+src=", page)  # no script from a CDN: opens offline
    executed = nbformat.read(out / path.name, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]
    assert path.stem in results(pipeline_run.root, "notebooks", "html", "timings.json")["seconds"]


def ask(pipeline_run, number: str, questions: dict[str, str]) -> dict[str, Any]:
    """:func:`run_and_ask` on the pipeline run's copy of the notebook whose name starts with ``number``."""
    name = next(p.name for p in NOTEBOOKS if p.name.startswith(number))
    return run_and_ask(pipeline_run.root / "notebooks" / name, pipeline_run.root, questions)


@pytest.mark.pipeline
@pytest.mark.slow
def test_pipeline_results_agree_with_the_metrics_files(pipeline_run):
    root = pipeline_run.root
    got = ask(
        pipeline_run,
        "01",
        {
            "n": "len(predictions)",
            "accuracy": "classifier_accuracy",
            "bot": "bot_table.to_dict()",
            "figures": "comparison['figure'].tolist()",
            "versions": "registry['version'].tolist()",
            "stages": "sorted(latest)",
        },
    )
    nlu, bot = (
        results(root, "nlu", "results", "metrics.json"),
        results(root, "nlu", "results", "bot", "metrics.json"),
    )
    promotion = results(root, "nlu", "results", "promotion.json")
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert got["n"] == nlu["n_test"] and got["accuracy"] == pytest.approx(nlu["intent_accuracy"], abs=1e-4)
    assert got["bot"]["all"]["task_completion"] == bot["all"]["task_completion"]
    assert got["bot"]["frozen"]["conversations"] == bot["frozen"]["conversations"]
    assert got["figures"] == list(params["promote_nlu"]["gate"])  # the gate's comparison, rule by rule
    assert promotion["version"] in got["versions"]
    assert {"evaluate_nlu", "evaluate_rag", "evaluate_bot", "promote_nlu"} <= set(got["stages"])


@pytest.mark.pipeline
@pytest.mark.slow
def test_nlu_error_analysis_agrees_with_evaluate_nlu(pipeline_run):
    root = pipeline_run.root
    got = ask(
        pipeline_run,
        "02",
        {
            "metrics": "metrics",
            "wrong": "len(wrong)",
            "to_label": "to_label.to_dict('records')",
            "threshold": "threshold['threshold']",
        },  # fmt: skip
    )
    nlu = results(root, "nlu", "results", "metrics.json")
    for key, value in got["metrics"].items():
        if not key.startswith("latency"):  # parse times are the stage's own
            assert value == nlu[key], key
    import pandas as pd

    rows = pd.read_csv(root / "nlu" / "results" / "predictions.csv")
    oos = (rows["actual"] == "out_of_scope") & rows["served"].isin(["out_of_scope", "nlu_fallback"])
    assert got["wrong"] == int(((rows["actual"] != rows["served"]) & ~oos).sum())
    flags = [r["wrong"] for r in got["to_label"]]
    assert flags == sorted(flags, reverse=True) and sum(flags) == min(got["wrong"], len(flags))
    assert got["threshold"] == results(root, "nlu", "results", "threshold.json")["threshold"]


@pytest.mark.pipeline
@pytest.mark.slow
def test_knowledge_failures_agree_with_evaluate_rag(pipeline_run):
    root = pipeline_run.root
    got = ask(
        pipeline_run,
        "03",
        {"outcomes": "outcomes.to_dict()", "articles": "articles.to_dict('records')"},
    )
    rag = results(root, "knowledge", "results", "metrics.json")
    outcomes = got["outcomes"]
    assert sum(outcomes.values()) == rag["questions"]
    answerable = rag["questions"] - outcomes["answered unanswerable"] - outcomes["refused unanswerable"]
    assert outcomes["unanswered"] / answerable == pytest.approx(rag["false_idk_rate"], abs=1e-4)
    assert all(0 <= a["answered_right"] <= 1 for a in got["articles"])
    assert (
        sum(a["unanswered"] for a in got["articles"]) >= outcomes["unanswered"]
    )  # each lost by its articles


@pytest.mark.pipeline
@pytest.mark.slow
def test_routing_what_if_is_built_on_the_turn_records(pipeline_run):
    root = pipeline_run.root
    got = ask(
        pipeline_run,
        "04",
        {"scored": "len(scored)", "share": "float(by_handler['share'].sum())", "policies": "len(table)",
         "free": "what_if[what_if['escalated'] == 0]['cost per 1000'].tolist()",
         "answers": "int(tiers['answers'].sum())", "knowledge": "int((turns['handler'] == 'knowledge').sum())"},
    )  # fmt: skip
    bot = results(root, "nlu", "results", "bot", "metrics.json")
    policies = results(root, "nlu", "results", "policies", "policies.json")
    assert got["scored"] == bot["all"]["turns"] > 0
    assert got["share"] == pytest.approx(1)
    assert got["policies"] == len(policies["rows"]) == 8
    assert got["free"] and set(got["free"]) == {0}  # nothing sent to an LLM tier costs nothing
    assert got["answers"] == got["knowledge"]  # every knowledge turn counted once by what answered it


@pytest.mark.pipeline
@pytest.mark.slow
def test_conversation_analytics_agree_with_the_evaluation(pipeline_run):
    root = pipeline_run.root
    got = ask(
        pipeline_run,
        "05",
        {
            "figures": "asdict(figures)",
            "funnel": "funnel.to_dict('records')",
            "failing": "len(failing)",
            "tested": "scored['conversation'].nunique()",
        },  # fmt: skip
    )
    bot = results(root, "nlu", "results", "bot", "metrics.json")
    records = results(root, "nlu", "results", "bot", "records.json")["records"]
    failing = re.search(
        r"(\d+) of (\d+) conversations have a failing turn",
        results(root, "nlu", "results", "bot", "failing.md"),
    )
    assert got["figures"]["user_turns"] == sum(row["turns"] for row in got["funnel"]) == len(records)
    assert got["tested"] == bot["all"]["conversations"] == int(failing.group(2))
    assert got["failing"] == int(failing.group(1))
