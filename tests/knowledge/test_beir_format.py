"""The BEIR file format: reading and checking the files, one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.beir_format import BeirFormatError, load_dataset, load_folder


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
