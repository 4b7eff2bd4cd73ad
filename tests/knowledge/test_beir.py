"""The ``python -m knowledge.beir`` command line: scores a set, exits 2 with one line on bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge.beir import main
from knowledge.beir_synthetic import make_synthetic

from .conftest import HashingEmbedding
from .test_beir_format import CORPUS, QUERIES, write_set


def test_the_command_line_scores_a_set_and_exits_2_on_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_set(tmp_path / "bad", CORPUS, QUERIES, "q1\td9\t1\n")
    args = [
        "evaluate",
        "--corpus",
        str(root / "corpus.jsonl"),
        "--queries",
        str(root / "queries.jsonl"),
        "--qrels",
        str(root / "qrels" / "test.tsv"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("beir: error: ")
        and "judged document id(s) not in" in err
        and len(err.splitlines()) == 1
    )
    assert main([*args[:-1], str(tmp_path / "nope.tsv")]) == 2
    assert "qrels file not found" in capsys.readouterr().err
    assert main([*args, "--retrievers", "dense,splade"]) == 2
    assert "unknown retriever 'splade'" in capsys.readouterr().err

    tiny = make_synthetic(tmp_path / "tiny", n_docs=12)
    monkeypatch.setattr("knowledge.embeddings.local_embed_model", lambda backend=None: HashingEmbedding())
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "evaluate",
                "--corpus",
                str(tiny / "corpus.jsonl"),
                "--queries",
                str(tiny / "queries.jsonl"),
                "--qrels",
                str(tiny / "qrels" / "test.tsv"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "tiny: 12 documents" in printed and "bm25" in printed and "hybrid" in printed
    assert set(json.loads(out.read_text())["scores"]) == {"dense", "bm25", "hybrid"}
