"""The ``export_beir`` stage, the ``knowledge.beir`` command line and ``benchmarks/retrieval.py`` as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knowledge.beir_format import load_folder
from pipelines.export_beir import main

from .test_build_index import make_project
from .test_evaluate_rag import GOLD

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "guard"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_project(tmp_path)
    (tmp_path / "gold.yml").write_text(GOLD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_export_beir_writes_the_three_files(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--gold", "gold.yml", "--sources", "knowledge/sources.yml", "--out", "beir/gold"]) == 0
    dataset = load_folder(project / "beir" / "gold")
    assert sorted(dataset.corpus) == ["acme-refunds", "acme-shipping", "globex-warranty"]
    assert sorted(dataset.queries) == ["globex-warranty", "money-back", "parcel", "refund-window"]
    assert dataset.queries["globex-warranty"]["tenant"] == "globex"
    assert "3 documents, 4 queries, 4 judgements" in capsys.readouterr().out


def test_export_beir_exits_2_on_a_bad_gold_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "bad.yml").write_text("questions:\n  - {id: a, question: q, kind: direct, doc_ids: [nope]}\n")
    assert main(["--gold", "bad.yml", "--sources", "knowledge/sources.yml", "--out", "beir/gold"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "export_beir: error: gold question 'a' names unknown doc id 'nope'"
    assert not (project / "beir").exists()


def test_malformed_beir_files_exit_2_with_one_line_and_no_traceback(project: Path) -> None:
    folder = project / "set"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{"_id": "d2"\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n')
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    done = run(
        [
            "-m",
            "knowledge.beir",
            "evaluate",
            "--corpus",
            "set/corpus.jsonl",
            "--queries",
            "set/queries.jsonl",
            "--qrels",
            "set/qrels/test.tsv",
        ],
        project,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "beir: error: set/corpus.jsonl:2: not valid JSON (Expecting ',' delimiter)"
    ]
    bench = run([str(ROOT / "benchmarks" / "retrieval.py"), "--no-gold", "--no-tiny", "set"], project)
    assert bench.returncode == 2 and "Traceback" not in bench.stderr
    assert "retrieval benchmark: error: set/corpus.jsonl:2: not valid JSON" in bench.stderr


@pytest.mark.slow
def test_the_benchmark_prints_retriever_by_dataset_with_the_bm25_baseline(project: Path) -> None:
    main(["--gold", "gold.yml", "--sources", "knowledge/sources.yml", "--out", "beir/mini"])
    done = run(
        [
            str(ROOT / "benchmarks" / "retrieval.py"),
            "--no-gold",
            "beir/mini",
            "--json",
            "bench.json",
            "--plot",
            "bench.png",
        ],
        project,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [
        line for line in done.stdout.splitlines() if line.startswith("| mini |") or line.startswith("| tiny")
    ]
    assert len(lines) == 6 and sum("| bm25 |" in line and "baseline" in line for line in lines) == 2
    figures = json.loads((project / "bench.json").read_text())
    assert {(row["dataset"], row["retriever"]) for row in figures["retrieval"]} == {
        (d, r) for d in ("mini", "tiny-synthetic") for r in ("bm25", "dense", "hybrid")
    }
    assert all(0 <= row["ndcg_at_10"] <= 1 and row["build_seconds"] > 0 for row in figures["retrieval"])
    assert (project / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
