"""``python -m pipelines.evaluate_rag`` end to end on an index built with the shipped MiniLM model."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge.embeddings import local_embed_model
from knowledge.index import build_index
from pipelines.evaluate_rag import main

from .test_build_index import make_project

ROOT = Path(__file__).resolve().parents[2]

GOLD = """\
questions:
  - id: refund-window
    question: How long do I have to ask for a refund?
    answer: Within 30 days of delivery.
    doc_ids: [acme-refunds]
    kind: direct
  - id: money-back
    question: When will my money come back?
    answer: Within 5 business days, to the original payment method.
    doc_ids: [acme-refunds]
    kind: paraphrase
  - id: parcel
    question: How can I follow my parcel?
    answer: With the tracking link in the order confirmation email.
    doc_ids: [acme-shipping]
    kind: paraphrase
  - id: globex-warranty
    question: How long is the warranty on my device?
    answer: Two years.
    doc_ids: [globex-warranty]
    kind: direct
    tenant: globex
  - id: swallow
    question: What is the airspeed velocity of an unladen swallow?
    answer: ""
    doc_ids: []
    kind: unanswerable
"""


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index of the minimal project's documents, built once with the shipped MiniLM."""
    root = tmp_path_factory.mktemp("built")
    sources = make_project(root)
    build_index(sources, root / "index", 256, 32, local_embed_model(), show_progress=False)
    return root / "index"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_project(tmp_path)
    (tmp_path / "gold.yml").write_text(GOLD)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


@pytest.mark.slow
def test_evaluate_rag_writes_metrics_rows_curves_and_ragas(
    project: Path, index_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--index", str(index_dir), "--gold", "gold.yml", "--out", "results"]) == 0

    results = project / "results"
    metrics = json.loads((results / "metrics.json").read_text())
    assert {"hit_at_1", "hit_at_3", "mrr", "ndcg_at_10", "recall_at_3", "idk_precision", "idk_recall"} <= set(
        metrics
    )
    assert (
        metrics["questions"] == 5 and metrics["top_k"] == 3 and metrics["cut_off"] == 0.3
    )  # no dev: the default
    assert metrics["retriever"] == "hybrid"
    assert metrics["hit_at_3"] == 1.0  # two acme documents, one globex: the right one is always in the top 3
    assert metrics["idk_recall"] == 1.0  # the swallow question is not answered
    assert set(metrics["retrievers"]) == {"dense", "bm25", "hybrid"}
    assert metrics["retrievers"]["dense"]["hit_at_3"] == 1.0
    assert metrics["answerability"]["model"] == "dense_score"  # this index was built without dev questions
    ragas = metrics["ragas"]
    assert ragas["judge"] == "not configured" and ragas["samples"] == 4
    assert 0.0 < ragas["semantic_similarity"] <= 1.0 and 0.0 <= ragas["non_llm_context_recall"] <= 1.0
    assert ragas["faithfulness"] is None
    with (results / "per_question.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == [
        "refund-window",
        "money-back",
        "parcel",
        "globex-warranty",
        "swallow",
    ]
    assert rows[3]["ranked"] == "globex-warranty"
    assert rows[0]["ragas_semantic_similarity"] and rows[4]["ragas_semantic_similarity"] == ""
    with (results / "hit_at_k.csv").open() as handle:
        curve = list(csv.DictReader(handle))
    assert [int(point["k"]) for point in curve] == list(range(1, 11))
    assert all(float(a["hit_rate"]) <= float(b["hit_rate"]) for a, b in zip(curve, curve[1:], strict=False))
    with (results / "idk_curve.csv").open() as handle:
        idk = list(csv.DictReader(handle))
    assert idk and all(0.0 <= float(p["precision"]) <= 1.0 and 0.0 <= float(p["recall"]) <= 1.0 for p in idk)
    with (results / "retrievers.csv").open() as handle:
        assert {row["retriever"] for row in csv.DictReader(handle)} == {"dense", "bm25", "hybrid"}
    for png in ("hit_at_k.png", "idk_curve.png", "retrievers.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "evaluate_rag: 5 questions, served hybrid: hit@1" in out and "bm25" in out and "ragas" in out

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("switchboard-test").experiment_id])
    assert run.data.tags["stage"] == "evaluate_rag"
    assert (
        run.data.params["cut_off"] == "0.3"
        and run.data.params["knowledge_retriever"] == "hybrid"
        and run.data.params["llm"] == "none"
    )
    assert run.data.metrics["evaluate_rag/mrr"] == pytest.approx(metrics["mrr"])
    assert run.data.metrics["evaluate_rag/retrievers.bm25.mrr"] == pytest.approx(
        metrics["retrievers"]["bm25"]["mrr"]
    )
    assert "evaluate_rag/ragas.semantic_similarity" in run.data.metrics
    assert "evaluate_rag/by_kind.unanswerable.idk_recall" in run.data.metrics
    artifacts = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert artifacts == {
        "metrics.json",
        "per_question.csv",
        "hit_at_k.csv",
        "hit_at_k.png",
        "idk_curve.csv",
        "idk_curve.png",
        "retrievers.csv",
        "retrievers.png",
    }


@pytest.mark.parametrize(
    ("gold", "message"),
    [
        (None, "gold file not found: missing.yml"),
        ("questions: [\n  - id: a\n", "is not valid YAML"),
        (
            "questions:\n  - {id: a, question: q, kind: direct, doc_ids: [acme-nope]}\n",
            "unknown doc id 'acme-nope'",
        ),
    ],
)
def test_bad_gold_exits_2_with_one_line(
    project: Path, index_dir: Path, capsys: pytest.CaptureFixture[str], gold: str | None, message: str
) -> None:
    gold_path = "missing.yml" if gold is None else "bad.yml"
    if gold is not None:
        (project / gold_path).write_text(gold)
    assert main(["--index", str(index_dir), "--gold", gold_path, "--out", "results"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("evaluate_rag: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert not (project / "results").exists()


def test_missing_index_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--index", "nowhere", "--gold", "gold.yml", "--out", "results"]) == 2
    assert capsys.readouterr().err.strip() == (
        "evaluate_rag: error: no knowledge index at nowhere (missing manifest.json)"
    )


def test_the_command_line_prints_no_traceback(project: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "guard"), str(ROOT)])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.evaluate_rag",
            "--index",
            "nowhere",
            "--gold",
            "nope.yml",
            "--out",
            "r",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "evaluate_rag: error: gold file not found: nope.yml"
