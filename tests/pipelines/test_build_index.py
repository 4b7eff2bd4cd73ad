"""``python -m pipelines.build_index`` end to end in a temporary project, with the shipped MiniLM model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import get_settings
from pipelines.build_index import main

PARAMS = """\
base:
  tenant: acme
  mlflow_experiment: switchboard-test
build_index:
  chunk_size: 256
  chunk_overlap: 32
  embed_backend: onnx
  batch_size: 32
  vector_store: embedded
  fusion: rrf
  dense_weight: 0.5
  answerability_c: 1.0
  max_false_idk: 0.05
evaluate_rag:
  top_k: 3
  retrievers: [dense, bm25, hybrid]
  ragas: true
serve:
  knowledge_top_k: 3
"""

DEV = """\
questions:
  - {id: d1, kind: direct, doc_ids: [acme-refunds], question: "Who may ask for a refund?"}
  - {id: d2, kind: paraphrase, doc_ids: [acme-refunds], question: "Where does my money go when you pay me back?"}
  - {id: d3, kind: direct, doc_ids: [acme-shipping], question: "How long does standard delivery take?"}
  - {id: d4, kind: paraphrase, doc_ids: [acme-shipping], question: "Where do I find the link to follow my package?"}
  - {id: d5, kind: direct, doc_ids: [globex-warranty], question: "How long is the Globex device warranty?", tenant: globex}
  - {id: u1, kind: unanswerable, doc_ids: [], question: "Can I bring my dog into the store?"}
  - {id: u2, kind: unanswerable, doc_ids: [], question: "Who won the football world cup in 1954?"}
  - {id: u3, kind: unanswerable, doc_ids: [], question: "Do you sell saxophones?"}
"""

DOCS = {
    "acme/refunds.md": (
        "---\nid: acme-refunds\ntitle: Refund policy\ntags: [billing]\n---\n# Refund policy\n"
        "## Who can ask for a refund\nAny customer can ask for a refund within 30 days of delivery.\n"
        "## How refunds are paid\nRefunds go back to the original payment method within 5 business days.\n"
    ),
    "acme/shipping.md": (
        "---\nid: acme-shipping\ntitle: Shipping times\n---\n# Shipping times\n"
        "## Delivery times\nStandard delivery takes 3 to 5 business days.\n"
        "## Tracking a parcel\nEvery order confirmation email contains a tracking link.\n"
    ),
    "globex/warranty.md": (
        "---\nid: globex-warranty\ntitle: Globex warranty\ntenant: globex\n---\n# Globex warranty\n"
        "## Coverage\nGlobex devices carry a two year warranty.\n"
    ),
    "acme/broken.md": "This file has no front matter.\n",
}


def make_project(root: Path) -> Path:
    """A minimal project in ``root``: params.yaml, ``knowledge/docs`` and ``knowledge/sources.yml``."""
    (root / "params.yaml").write_text(PARAMS)
    for relative, text in DOCS.items():
        path = root / "knowledge" / "docs" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    sources = root / "knowledge" / "sources.yml"
    sources.write_text("sources:\n  - {name: docs, type: folder, path: docs, glob: '**/*.md'}\n")
    (root / "knowledge" / "dev.yml").write_text(DEV)
    return sources


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


@pytest.mark.slow
def test_build_index_writes_the_index_and_tracks_the_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--sources",
        "knowledge/sources.yml",
        "--out",
        "knowledge/index",
        "--dev",
        "knowledge/dev.yml",
        "--quiet",
    ]
    assert main(args) == 0

    manifest = json.loads((project / "knowledge" / "index" / "manifest.json").read_text())
    assert sorted(doc["doc_id"] for doc in manifest["documents"]) == [
        "acme-refunds",
        "acme-shipping",
        "globex-warranty",
    ]
    assert manifest["skipped"] == [
        {
            "path": "knowledge/docs/acme/broken.md",
            "reason": "no YAML front matter (the file must start with a '---' block)",
        }
    ]
    assert manifest["chunk_count"] == 5
    assert manifest["embedding_backend"] == "onnx" and manifest["vector_store"] == {"kind": "embedded"}
    assert manifest["retrieval"] == {"fusion": "rrf", "dense_weight": 0.5}
    assert manifest["answerability"]["kind"] == "logistic" and manifest["answerability"]["dev_questions"] == 8
    assert (project / "knowledge" / "index" / "answerability.json").is_file()
    captured = capsys.readouterr()
    assert "3 documents, 5 chunks" in captured.out and "embedded 5" in captured.out
    assert "answerability fitted on 8 dev questions (3-fold cross-validated AUC " in captured.out
    assert manifest["answerability"]["cv_folds"] == 3 and "dev_auc" not in manifest["answerability"]
    assert "skipping knowledge/docs/acme/broken.md: no YAML front matter" in captured.err

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("switchboard-test")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.tags["stage"] == "build_index"
    assert run.data.tags["kb_version"] == manifest["kb_version"]
    assert run.data.params["chunk_size"] == "256" and run.data.params["embedding_backend"] == "onnx"
    assert run.data.metrics["build_index/chunks"] == 5 and run.data.metrics["build_index/documents"] == 3
    assert (
        run.data.metrics["build_index/skipped_files"] == 1
        and run.data.metrics["build_index/chunks_per_second"] > 0
    )
    assert run.data.metrics["build_index/embedded_chunks"] == 5
    assert 0 < run.data.metrics["build_index/answerability_suggested_min_score"] < 1
    assert run.data.metrics["build_index/answerability_dev_cv_auc"] == manifest["answerability"]["dev_cv_auc"]
    assert "manifest.json" in [artifact.path for artifact in client.list_artifacts(run.info.run_id)]

    # a second build with one article changed embeds only that article's chunks
    refunds = project / "knowledge" / "docs" / "acme" / "refunds.md"
    refunds.write_text(refunds.read_text().replace("5 business days", "3 business days"))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "embedded 1" in out and "4 from cache" in out


def test_a_malformed_dev_file_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "knowledge" / "dev.yml").write_text("questions: [\n")
    assert (
        main(["--sources", "knowledge/sources.yml", "--out", "knowledge/index", "--dev", "knowledge/dev.yml"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("build_index: error: ") and "not valid YAML" in err and len(err.splitlines()) == 1
    assert not (project / "knowledge" / "index").exists()


def test_an_unknown_vector_store_exits_2(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setenv("SWITCHBOARD_VECTOR_STORE", "pgvector")
    monkeypatch.delenv("SWITCHBOARD_PGVECTOR_URL", raising=False)
    get_settings.cache_clear()  # the settings are read once per process: read them with this environment
    request.addfinalizer(get_settings.cache_clear)
    assert main(["--sources", "knowledge/sources.yml", "--out", "knowledge/index"]) == 2
    assert "needs SWITCHBOARD_PGVECTOR_URL" in capsys.readouterr().err
    assert not (project / "knowledge" / "index").exists()


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ("knowledge/missing.yml", "sources file not found: knowledge/missing.yml"),
        ("knowledge/empty-source.yml", "no usable knowledge documents"),
    ],
)
def test_bad_sources_exit_2_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], sources: str, message: str
) -> None:
    (project / "knowledge" / "empty").mkdir()
    (project / "knowledge" / "empty-source.yml").write_text(
        "sources:\n  - {name: e, type: folder, path: empty}\n"
    )
    assert main(["--sources", sources, "--out", "knowledge/index"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("build_index: error: ") and message in err
    assert len(err.splitlines()) == 1
    assert not (project / "knowledge" / "index").exists()
