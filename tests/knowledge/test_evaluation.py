"""A whole evaluation run on the tiny knowledge base: retrieval per retriever, "I don't know", the curves."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.evaluation import evaluate, extractive_replies
from knowledge.gold import load_gold
from knowledge.retrieval import KnowledgeBase

from .conftest import HashingEmbedding
from .test_gold import GOLD, write_gold


def test_evaluate_scores_every_question(built, sources: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding())
    questions = load_gold(write_gold(tmp_path, GOLD))
    result = evaluate(kb, questions, top_k=2, answer=extractive_replies(kb, 3, 0.3), answer_top_k=3, max_k=3)
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
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding())
    result = evaluate(
        kb, load_gold(write_gold(tmp_path, GOLD)), top_k=2, answer=extractive_replies(kb, 3, 0.99), max_k=2
    )
    assert result.metrics["false_idk_rate"] == 1.0
    assert result.metrics["idk_recall"] == 1.0
    assert result.metrics["idk_precision"] == pytest.approx(1 / 5)
    assert result.metrics["hit_at_1"] == 1.0  # retrieval is scored independently of the cut-off


def test_every_retriever_is_scored_and_the_idk_curve_covers_all_cut_offs(
    built, sources: Path, tmp_path: Path
) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding())
    result = evaluate(
        kb, load_gold(write_gold(tmp_path, GOLD)), top_k=2, answer=extractive_replies(kb, 3, 0.3), max_k=3
    )
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
        evaluate(
            kb,
            load_gold(write_gold(tmp_path, GOLD)),
            top_k=2,
            answer=extractive_replies(kb, 3, 0.3),
            retrievers=["bm25"],
        )
