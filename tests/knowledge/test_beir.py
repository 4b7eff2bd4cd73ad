"""The BEIR-format path: reading and checking the files, exporting our gold set, scoring the retrievers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge.beir import (
    BeirFormatError,
    evaluate_dataset,
    export_gold,
    load_dataset,
    load_folder,
    main,
    make_synthetic,
    mrr,
    ndcg,
    recall,
)

from .conftest import HashingEmbedding
from .test_evaluation import GOLD, write_gold


def write_set(root: Path, corpus: str, queries: str, qrels: str) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(corpus)
    (root / "queries.jsonl").write_text(queries)
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


CORPUS = '{"_id": "d1", "title": "Refunds", "text": "Refunds within 30 days."}\n{"_id": "d2", "text": "Delivery in 3 days."}\n'
QUERIES = '{"_id": "q1", "text": "refund window"}\n{"_id": "q2", "text": "unjudged"}\n'
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n"


def test_a_valid_set_is_read_with_graded_judgements(tmp_path: Path) -> None:
    dataset = load_folder(write_set(tmp_path / "mini", CORPUS, QUERIES, QRELS))
    assert dataset.name == "mini"
    assert dataset.corpus["d2"] == {"title": "", "text": "Delivery in 3 days.", "tenant": "default"}
    assert dataset.qrels == {"q1": {"d1": 1, "d2": 0}}
    assert dataset.judged_queries == ["q1"]  # q2 has no judgement, so it is not scored


@pytest.mark.parametrize(
    ("corpus", "queries", "qrels", "message"),
    [
        ("{not json\n", QUERIES, QRELS, "corpus.jsonl:1: not valid JSON"),
        ('{"_id": "d1"}\n', QUERIES, QRELS, "corpus.jsonl:1: missing 'text'"),
        ('["d1", "text"]\n', QUERIES, QRELS, "corpus.jsonl:1: expected a JSON object"),
        (CORPUS + '{"_id": "d1", "text": "again"}\n', QUERIES, QRELS, "corpus.jsonl:3: duplicate _id 'd1'"),
        ("", QUERIES, QRELS, "the corpus is empty"),
        (CORPUS, '{"text": "no id"}\n', QRELS, "queries.jsonl:1: missing '_id'"),
        (CORPUS, QUERIES, "q1 d1 1\n", "test.tsv:1: expected 3 tab-separated columns"),
        (CORPUS, QUERIES, "q1\td1\thigh\n", "test.tsv:1: score 'high' is not a number"),
        (CORPUS, QUERIES, "query-id\tcorpus-id\tscore\nq9\td1\t1\n", "judged query id(s) not in"),
        (CORPUS, QUERIES, "q1\td9\t1\n", "judged document id(s) not in"),
        (CORPUS, QUERIES, "q1\td1\t0\n", "no query has a relevant document"),
        (CORPUS, QUERIES, "query-id\tcorpus-id\tscore\n", "no relevance judgements"),
    ],
)
def test_a_malformed_file_is_one_clear_error(
    tmp_path: Path, corpus: str, queries: str, qrels: str, message: str
) -> None:
    root = write_set(tmp_path, corpus, queries, qrels)
    with pytest.raises(BeirFormatError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_folder(root)
    assert "\n" not in str(error.value)


def test_missing_and_binary_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BeirFormatError, match="corpus file not found"):
        load_dataset(tmp_path / "c.jsonl", tmp_path / "q.jsonl", tmp_path / "r.tsv")
    root = write_set(tmp_path, CORPUS, QUERIES, QRELS)
    (root / "queries.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BeirFormatError, match="not UTF-8"):
        load_folder(root)


def test_scores_follow_the_beir_definitions() -> None:
    gains = {"a": 2, "b": 1, "z": 0}
    assert ndcg(["a", "b"], gains) == 1.0
    assert ndcg(["b", "a"], gains) == pytest.approx((1 + 2 / 1.5849625) / (2 + 1 / 1.5849625))
    assert recall(["x", "b"], gains, 100) == 0.5 and recall(["x", "b"], gains, 1) == 0.0
    assert mrr(["z", "x", "a"], gains) == pytest.approx(1 / 3)


def test_the_gold_set_exports_to_beir_with_tenants(tmp_path: Path, sources: Path) -> None:
    out = tmp_path / "export"
    counts = export_gold(write_gold(tmp_path, GOLD), sources, out)
    assert counts == {"documents": 3, "queries": 4, "judgements": 5}  # the unanswerable question is left out
    dataset = load_folder(out)
    assert dataset.corpus["globex-refunds"]["tenant"] == "globex"
    assert dataset.queries["globex-window"] == {
        "text": "How long do globex customers have for a refund with the zebra code?",
        "tenant": "globex",
    }
    assert dataset.qrels["refund-and-delivery"] == {"acme-refunds": 1, "acme-shipping": 1}
    first = json.loads((out / "corpus.jsonl").read_text().splitlines()[0])
    assert set(first) == {"_id", "title", "text", "metadata"}


def test_every_retriever_is_scored_on_a_generated_set(tmp_path: Path) -> None:
    dataset = load_folder(make_synthetic(tmp_path / "tiny", n_docs=24))
    assert len(dataset.corpus) == 24 and len(dataset.judged_queries) == 24
    run = evaluate_dataset(dataset, HashingEmbedding(), work_dir=tmp_path)
    assert set(run.scores) == {"dense", "bm25", "hybrid"}
    for values in run.scores.values():
        assert set(values) == {"ndcg_at_10", "recall_at_100", "mrr_at_10", "latency_ms_p50"}
        assert 0.0 <= values["ndcg_at_10"] <= 1.0 and values["recall_at_100"] == 1.0
    assert run.scores["bm25"]["ndcg_at_10"] > 0.8  # the product names are in the questions
    assert run.build_seconds > 0 and run.chunks == 24


def test_tenants_in_a_beir_set_are_respected(tmp_path: Path, sources: Path) -> None:
    out = tmp_path / "export"
    export_gold(write_gold(tmp_path, GOLD), sources, out)
    run = evaluate_dataset(
        load_folder(out), HashingEmbedding(), retrievers=["bm25", "dense"], work_dir=tmp_path
    )
    assert run.scores["bm25"]["recall_at_100"] == 1.0 and run.scores["dense"]["recall_at_100"] == 1.0


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
