"""Retrieval metrics on hand-computed cases, the gold file, and a whole evaluation run."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.evaluation import (
    GoldQuestion,
    GoldSetError,
    check_gold_against_index,
    evaluate,
    hit_at_k,
    idk_precision_recall,
    load_gold,
    mean,
    ndcg_at_k,
    ranked_doc_ids,
    recall_at_k,
    reciprocal_rank,
)
from knowledge.retrieval import Hit, KnowledgeBase

from .conftest import HashingEmbedding

RANKED = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("relevant", "k", "expected"),
    [
        ({"a"}, 1, 1.0),
        ({"b"}, 1, 0.0),
        ({"b"}, 2, 1.0),
        ({"d", "x"}, 3, 0.0),
        ({"d", "x"}, 4, 1.0),
        (set(), 4, 0.0),
    ],
)
def test_hit_at_k(relevant: set[str], k: int, expected: float) -> None:
    assert hit_at_k(RANKED, relevant, k) == expected


@pytest.mark.parametrize(
    ("relevant", "k", "expected"),
    [({"a"}, None, 1.0), ({"c"}, None, 1 / 3), ({"d", "b"}, None, 0.5), ({"d"}, 3, 0.0), ({"x"}, None, 0.0)],
)
def test_reciprocal_rank(relevant: set[str], k: int | None, expected: float) -> None:
    assert reciprocal_rank(RANKED, relevant, k) == pytest.approx(expected)


def test_mrr_is_the_mean_reciprocal_rank() -> None:
    # first relevant at ranks 1, 2 and never: (1 + 1/2 + 0) / 3
    runs = [(["a", "b"], {"a"}), (["a", "b"], {"b"}), (["a", "b"], {"z"})]
    assert mean(reciprocal_rank(ranked, relevant) for ranked, relevant in runs) == pytest.approx(0.5)
    assert mean([]) is None


@pytest.mark.parametrize(
    ("relevant", "k", "expected"),
    [({"a", "c"}, 1, 0.5), ({"a", "c"}, 3, 1.0), ({"a", "x", "y"}, 4, 1 / 3), (set(), 4, 0.0)],
)
def test_recall_at_k(relevant: set[str], k: int, expected: float) -> None:
    assert recall_at_k(RANKED, relevant, k) == pytest.approx(expected)


def test_ranked_doc_ids_keeps_each_document_at_its_best_chunk() -> None:
    hits = [
        Hit(doc_id, "", "", "", score) for doc_id, score in [("b", 0.9), ("a", 0.8), ("b", 0.7), ("c", 0.6)]
    ]
    assert ranked_doc_ids(hits) == ["b", "a", "c"]


def test_idk_precision_and_recall() -> None:
    # abstained on q1 (unanswerable: right) and q2 (answerable: wrong); missed unanswerable q3.
    abstained = [True, True, False, False]
    unanswerable = [True, False, True, False]
    assert idk_precision_recall(abstained, unanswerable) == (0.5, 0.5)
    assert idk_precision_recall([False, False], [True, False]) == (None, 0.0)
    assert idk_precision_recall([True], [False]) == (0.0, None)
    with pytest.raises(ValueError):
        idk_precision_recall([True], [])


GOLD = """\
questions:
  - id: refund-window
    question: How many days do I have to ask for a refund?
    answer: 30 days after delivery.
    doc_ids: [acme-refunds]
    kind: direct
  - id: tracking
    question: Where is the tracking link for my parcel?
    answer: In the order confirmation email.
    doc_ids: [acme-shipping]
    kind: paraphrase
  - id: refund-and-delivery
    question: Refund payment method and express delivery days
    answer: Original payment method; next business day.
    doc_ids: [acme-refunds, acme-shipping]
    kind: multi_doc
  - id: globex-window
    question: How long do globex customers have for a refund with the zebra code?
    answer: 14 days.
    doc_ids: [globex-refunds]
    kind: direct
    tenant: globex
  - id: quantum
    question: Quantum gravity?
    answer: ""
    doc_ids: []
    kind: unanswerable
"""


def write_gold(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gold.yml"
    path.write_text(text)
    return path


def test_load_gold_reads_questions_with_the_default_tenant(tmp_path: Path) -> None:
    questions = load_gold(write_gold(tmp_path, GOLD), default_tenant="acme")
    assert [q.id for q in questions] == [
        "refund-window",
        "tracking",
        "refund-and-delivery",
        "globex-window",
        "quantum",
    ]
    assert questions[0] == GoldQuestion(
        id="refund-window",
        question="How many days do I have to ask for a refund?",
        answer="30 days after delivery.",
        doc_ids=("acme-refunds",),
        kind="direct",
        tenant="acme",
    )
    assert questions[3].tenant == "globex"
    assert not questions[4].answerable


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "not found"),
        ("questions: [\n  - id: a\n", "not valid YAML"),
        ("- just a list\n", "non-empty 'questions:' list"),
        ("questions:\n  - {id: a, question: q, kind: direct}\n", "unanswerable questions, and only they"),
        ("questions:\n  - {id: a, question: q, kind: unanswerable, doc_ids: [x]}\n", "and only they"),
        ("questions:\n  - {id: a, question: q, kind: vague, doc_ids: [x]}\n", "unknown kind 'vague'"),
        ("questions:\n  - {id: a, kind: direct, doc_ids: [x]}\n", "missing question"),
        ("questions:\n  - {id: a, question: q, kind: direct, doc_ids: x}\n", "list of document ids"),
        (
            "questions:\n  - {id: a, question: q, kind: direct, doc_ids: [x]}\n" * 1
            + "  - {id: a, question: r, kind: direct, doc_ids: [x]}\n",
            "duplicate question id 'a'",
        ),
    ],
)
def test_a_bad_gold_file_is_one_clear_error(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "gold.yml" if text is None else write_gold(tmp_path, text)
    with pytest.raises(GoldSetError, match=message) as error:
        load_gold(path)
    assert "\n" not in str(error.value)


def test_gold_doc_ids_must_exist_in_the_index_for_that_tenant(built, tmp_path: Path) -> None:
    questions = load_gold(write_gold(tmp_path, GOLD))
    check_gold_against_index(questions, built.manifest)
    unknown = load_gold(
        write_gold(tmp_path, "questions:\n  - {id: a, question: q, kind: direct, doc_ids: [nope]}\n")
    )
    with pytest.raises(GoldSetError, match="unknown doc id 'nope'"):
        check_gold_against_index(unknown, built.manifest)
    wrong_tenant = load_gold(
        write_gold(
            tmp_path, "questions:\n  - {id: a, question: q, kind: direct, doc_ids: [globex-refunds]}\n"
        )
    )
    with pytest.raises(GoldSetError, match="of tenant 'globex'"):
        check_gold_against_index(wrong_tenant, built.manifest)


def test_evaluate_scores_every_question(built, sources: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding(), llm=None)
    questions = load_gold(write_gold(tmp_path, GOLD))
    result = evaluate(kb, questions, top_k=2, min_score=0.3, answer_top_k=3, max_k=3)
    metrics = result.metrics
    assert (metrics["questions"], metrics["answerable"], metrics["unanswerable"]) == (5, 4, 1)
    assert metrics["hit_at_1"] == 1.0
    assert metrics["hit_at_2"] == 1.0
    assert metrics["mrr"] == 1.0
    assert metrics["recall_at_2"] == 1.0  # the multi-doc question finds both documents in its top 2
    assert (metrics["idk_precision"], metrics["idk_recall"], metrics["false_idk_rate"]) == (1.0, 1.0, 0.0)
    assert metrics["latency_ms_p50"] >= 0 and metrics["retrieval_ms_p50"] >= 0
    assert set(metrics["by_kind"]) == {"direct", "paraphrase", "multi_doc", "unanswerable"}
    assert metrics["by_kind"]["unanswerable"] == {"questions": 1, "idk_recall": 1.0}
    assert metrics["by_kind"]["direct"]["questions"] == 2
    assert [point["k"] for point in result.hit_curve] == [1, 2, 3]
    assert all(point["hit_rate"] == 1.0 for point in result.hit_curve)
    rows = {row["id"]: row for row in result.rows}
    assert rows["refund-and-delivery"]["ranked"].split(";")[:2] in (
        ["acme-refunds", "acme-shipping"],
        ["acme-shipping", "acme-refunds"],
    )
    assert rows["globex-window"]["ranked"] == "globex-refunds"  # only its tenant's documents
    assert rows["quantum"]["answered"] is False and rows["quantum"]["hit_at_1"] is None


def test_a_high_cut_off_turns_answers_into_false_idks(built, sources: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding(), llm=None)
    result = evaluate(kb, load_gold(write_gold(tmp_path, GOLD)), top_k=2, min_score=0.99, max_k=2)
    assert result.metrics["false_idk_rate"] == 1.0
    assert result.metrics["idk_recall"] == 1.0
    assert result.metrics["idk_precision"] == pytest.approx(1 / 5)
    assert result.metrics["hit_at_1"] == 1.0  # retrieval is scored independently of the cut-off


def test_ndcg_with_binary_relevance() -> None:
    assert ndcg_at_k(["a", "b"], {"a"}, 10) == 1.0
    assert ndcg_at_k(["b", "a"], {"a"}, 10) == pytest.approx(1 / 1.5849625)  # 1 / log2(3)
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx((1 + 0.5) / (1 + 1 / 1.5849625))
    assert ndcg_at_k(["x"] * 10 + ["a"], {"a"}, 10) == 0.0
    assert ndcg_at_k(["a"], set(), 10) == 0.0


def test_every_retriever_is_scored_and_the_idk_curve_covers_all_cut_offs(
    built, sources: Path, tmp_path: Path
) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding(), llm=None)
    result = evaluate(kb, load_gold(write_gold(tmp_path, GOLD)), top_k=2, min_score=0.3, max_k=3)
    retrievers = result.metrics["retrievers"]
    assert set(retrievers) == {"dense", "bm25", "hybrid"}
    for values in retrievers.values():
        assert set(values) == {"hit_at_1", "hit_at_2", "mrr", "ndcg_at_10", "recall_at_2"}
        assert all(0.0 <= value <= 1.0 for value in values.values())
    assert retrievers["hybrid"]["mrr"] == result.metrics["mrr"]  # the served retriever is the hybrid one
    assert len(result.retriever_rows) == 3 * 4  # three retrievers x four answerable questions
    assert result.metrics["answerability"]["auc"] == 1.0  # the nonsense question scores lowest
    curve = result.idk_curve
    assert curve[0]["cut_off"] == 0.0 and curve[0]["precision"] is None  # nothing refused at 0
    top = curve[-1]
    assert top["recall"] == 1.0 and top["precision"] == pytest.approx(1 / 5)  # everything refused
    with pytest.raises(ValueError, match="served retriever"):
        evaluate(kb, load_gold(write_gold(tmp_path, GOLD)), top_k=2, min_score=0.3, retrievers=["bm25"])
