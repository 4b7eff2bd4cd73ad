"""``python -m pipelines.build_index`` end to end in a temporary project, with the shipped MiniLM model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.build_index import main

PARAMS = """\
base:
  tenant: acme
  mlflow_experiment: switchboard-test
build_index:
  chunk_size: 256
  chunk_overlap: 32
evaluate_rag:
  top_k: 3
serve:
  knowledge_top_k: 3
  knowledge_min_score: 0.35
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
    assert main(["--sources", "knowledge/sources.yml", "--out", "knowledge/index"]) == 0

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
    out = capsys.readouterr().out
    assert "3 documents, 5 chunks" in out and "skipped knowledge/docs/acme/broken.md" in out

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("switchboard-test")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.tags["stage"] == "build_index"
    assert run.data.tags["kb_version"] == manifest["kb_version"]
    assert run.data.params["chunk_size"] == "256"
    assert run.data.metrics["chunks"] == 5 and run.data.metrics["documents"] == 3
    assert run.data.metrics["skipped_files"] == 1 and run.data.metrics["chunks_per_second"] > 0
    assert "manifest.json" in [artifact.path for artifact in client.list_artifacts(run.info.run_id)]


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
