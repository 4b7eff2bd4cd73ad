"""Tenant-scoped dense/BM25/hybrid retrieval and the answers, with the hashing embedding and once with MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knowledge.confidence import AnswerabilityModel
from knowledge.embeddings import local_embed_model
from knowledge.index import build_index
from knowledge.retrieval import (
    IDK_TEXT,
    LANGUAGE_TEXT,
    MAX_QUESTION_CHARS,
    KnowledgeBase,
    clean_question,
    overall_scale,
    search_text,
    unsupported_script,
)
from knowledge.retrievers import RETRIEVERS, Hit, Scored, fuse, ranked_doc_ids

from .conftest import DOCS, HashingEmbedding, write_docs

GLOBEX_QUESTION = "globex customers zebra refund code within 14 days"
REFUND_QUESTION = "How many days do I have to ask for a refund?"
ODD_QUESTIONS = ["", "   \n\t ", "x" * 10_000, "退款需要多长时间？", "Сколько дней на возврат?", "🙂🙂", "?!"]


@pytest.fixture
def kb(built, sources: Path, embed_model: HashingEmbedding) -> KnowledgeBase:
    return KnowledgeBase.load(sources.parent / "index", embed_model=embed_model)


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_every_retriever_ranks_the_tenants_chunks(kb: KnowledgeBase, retriever: str) -> None:
    hits = kb.retrieve(REFUND_QUESTION, "acme", top_k=3, retriever=retriever)
    assert 1 <= len(hits) <= 3
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    best = hits[0]
    assert (best.doc_id, best.title, best.section) == (
        "acme-refunds",
        "Refund policy",
        "Who can ask for a refund",
    )
    assert "within 30 days" in best.text


@pytest.mark.parametrize("retriever", RETRIEVERS)
def test_a_tenant_never_sees_another_tenants_chunks(kb: KnowledgeBase, retriever: str) -> None:
    assert kb.retrieve(GLOBEX_QUESTION, "globex", top_k=5, retriever=retriever)[0].doc_id == "globex-refunds"
    acme_hits = kb.retrieve(GLOBEX_QUESTION, "acme", top_k=10, retriever=retriever)
    assert acme_hits and all(hit.tenant == "acme" and hit.doc_id.startswith("acme-") for hit in acme_hits)
    assert kb.retrieve(GLOBEX_QUESTION, "initech", top_k=5, retriever=retriever) == []


def test_bm25_statistics_are_per_tenant(kb: KnowledgeBase) -> None:
    # "zebra" occurs only in globex's article: for acme it is an unknown word, not a rare one
    assert kb.retrieve("zebra", "acme", top_k=5, retriever="bm25") == []
    assert [h.doc_id for h in kb.retrieve("zebra", "globex", top_k=5, retriever="bm25")] == ["globex-refunds"]


def test_the_answer_never_quotes_another_tenant(kb: KnowledgeBase) -> None:
    answer = kb.answer(GLOBEX_QUESTION, "acme", top_k=10, cut_off=0.0)
    assert "zebra" not in answer.text.lower()
    assert all(source["doc_id"] != "globex-refunds" for source in answer.sources)


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    dense = [Scored(1, 0.9), Scored(2, 0.8), Scored(3, 0.7)]
    bm25 = [Scored(2, 12.0), Scored(4, 8.0), Scored(3, 1.0)]
    fused = fuse(dense, bm25, fusion="rrf")
    assert [item.position for item in fused] == [2, 3, 1, 4]  # 2 and 3 are in both lists
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert [item.position for item in fuse(dense, bm25, fusion="rrf", dense_weight=1.0)][:3] == [1, 2, 3]


def test_relative_fusion_does_not_depend_on_the_list_depth() -> None:
    dense = [Scored(1, 0.9), Scored(2, 0.5)]
    bm25 = [Scored(2, 10.0), Scored(1, 2.0)]
    shallow = fuse(dense, bm25, fusion="relative", dense_weight=0.7)
    deep = fuse([*dense, Scored(3, 0.1)], [*bm25, Scored(3, 0.5)], fusion="relative", dense_weight=0.7)
    assert shallow[0] == deep[0] == Scored(1, pytest.approx(0.7 * 0.9 + 0.3 * 0.2))
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(dense, bm25, fusion="max")


def test_the_answer_quotes_the_paragraph_and_names_its_source(kb: KnowledgeBase) -> None:
    answer = kb.answer(REFUND_QUESTION, "acme", top_k=3, cut_off=0.2)
    assert answer.answered and answer.mode == "extractive" and answer.fallback_reason is None
    assert answer.text.startswith(
        "Any customer can ask for a refund within 30 days of delivery. Opened software cannot be refunded."
    )  # the whole paragraph: it fits
    assert answer.text.endswith("Source: Refund policy › Who can ask for a refund")
    assert answer.sources[0] == {
        "doc_id": "acme-refunds",
        "title": "Refund policy",
        "section": "Who can ask for a refund",
    }
    assert answer.confidence == pytest.approx(kb.confidence(REFUND_QUESTION, "acme"))


def test_without_a_fitted_model_the_confidence_is_the_best_dense_score(kb: KnowledgeBase) -> None:
    best = kb.retrieve(REFUND_QUESTION, "acme", top_k=1, retriever="dense")[0].score
    assert kb.answerability.kind == "dense_score"
    assert kb.confidence(REFUND_QUESTION, "acme") == pytest.approx(best)


def test_below_the_cut_off_it_does_not_know_and_offers_a_human(kb: KnowledgeBase) -> None:
    confidence = kb.confidence(REFUND_QUESTION, "acme")
    answer = kb.answer(REFUND_QUESTION, "acme", top_k=3, cut_off=confidence + 0.01)
    assert not answer.answered and answer.mode == "idk"
    assert answer.text == IDK_TEXT and "human agent" in answer.text
    assert answer.sources == []
    assert answer.confidence == pytest.approx(confidence)


def test_a_fitted_answerability_model_decides(kb: KnowledgeBase) -> None:
    # a model that only trusts questions whose words the knowledge base knows
    kb.answerability = AnswerabilityModel(
        features=["unknown"], mean=[0.0], scale=[1.0], coef=[-10.0], intercept=5.0
    )
    assert kb.answer("refund within 30 days of delivery", "acme", top_k=3, cut_off=0.5).answered
    unknown = kb.answer("platypus aquarium subscription", "acme", top_k=3, cut_off=0.5)
    assert not unknown.answered and unknown.features["unknown"] == 1.0


@pytest.mark.parametrize("question", ODD_QUESTIONS)
def test_odd_questions_get_an_answer_or_a_clear_refusal(kb: KnowledgeBase, question: str) -> None:
    answer = kb.answer(question, "acme", top_k=3, cut_off=0.2)
    assert answer.text
    assert answer.text in (IDK_TEXT, LANGUAGE_TEXT) or "Source: " in answer.text
    assert isinstance(kb.retrieve(question, "acme", top_k=3), list)


def test_another_script_gets_a_clear_refusal(kb: KnowledgeBase) -> None:
    for question in ("退款需要多长时间？", "Сколько дней на возврат?", "كم يوما للاسترداد؟"):
        answer = kb.answer(question, "acme", top_k=3, cut_off=0.0)
        assert (answer.text, answer.mode, answer.answered) == (LANGUAGE_TEXT, "refused", False)
    assert unsupported_script("Сколько дней на возврат?") and not unsupported_script("Rückgabe in 30 Tagen?")
    assert not unsupported_script("ORD-10042 退款")  # a Latin order number: let retrieval try


def test_empty_questions_are_not_answered(kb: KnowledgeBase) -> None:
    for question in ("", "  \n "):
        assert kb.retrieve(question, "acme", top_k=3) == []
        assert not kb.answer(question, "acme", top_k=3, cut_off=0.0).answered


def test_a_long_question_is_cut_before_retrieval(kb: KnowledgeBase) -> None:
    question = REFUND_QUESTION + " " + "padding " * 5_000
    assert len(clean_question(question)) == MAX_QUESTION_CHARS
    assert kb.answer(question, "acme", top_k=3, cut_off=0.0).answered


def test_an_order_id_is_read_as_the_word_order(kb: KnowledgeBase) -> None:
    # no article holds a customer's id: as an unknown word it made answerable questions look unanswerable
    assert search_text("I'd like to send back ORD-20251, how?") == "I'd like to send back order, how?"
    assert search_text("my order number is 20081 and #20061") == "my order and order"
    assert search_text("it cost €20051 or 20051.50") == "it cost €20051 or 20051.50"  # amounts stay
    asked = REFUND_QUESTION.replace("a refund", "a refund for ORD-20251")
    named = kb.lookup(asked, "acme")
    assert (
        named.features
        == kb.lookup(REFUND_QUESTION.replace("a refund", "a refund for order"), "acme").features
    )
    assert named.question == asked  # the cache's "names an order" check and the LLM tiers see the id


def test_top_k_and_retriever_are_checked(kb: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match="top_k"):
        kb.retrieve("refund", "acme", top_k=0)
    with pytest.raises(ValueError, match="unknown retriever 'sparse'"):
        kb.retrieve("refund", "acme", top_k=3, retriever="sparse")


def test_ranked_doc_ids_keeps_each_document_at_its_best_chunk() -> None:
    hits = [
        Hit(doc_id, "", "", "", score) for doc_id, score in [("b", 0.9), ("a", 0.8), ("b", 0.7), ("c", 0.6)]
    ]
    assert ranked_doc_ids(hits) == ["b", "a", "c"]


def test_load_checks_the_index_and_the_model(built, sources: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding())
    assert kb.version == built.kb_version == kb.manifest["kb_version"]
    with pytest.raises(ValueError, match="was built with"):
        KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding(model_name="other"))
    with pytest.raises(FileNotFoundError, match="no knowledge index"):
        KnowledgeBase.load(tmp_path / "nowhere", embed_model=HashingEmbedding())


@pytest.fixture(scope="module")
def minilm_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The tiny knowledge base built and read with the shipped MiniLM model (a few seconds)."""
    root = tmp_path_factory.mktemp("minilm")
    sources = write_docs(root, DOCS)
    build_index(sources, root / "index", 256, 32, local_embed_model(), show_progress=False)
    return KnowledgeBase.load(root / "index")


@pytest.mark.slow
def test_the_shipped_model_answers_a_paraphrase_with_its_source(minilm_kb: KnowledgeBase) -> None:
    answer = minilm_kb.answer("When will I get my money back?", "acme", top_k=3, cut_off=0.3)
    assert answer.answered
    assert "original payment method" in answer.text
    assert answer.text.endswith("Source: Refund policy › How refunds are paid")
    assert minilm_kb.manifest["embedding_model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert minilm_kb.manifest["embedding_dim"] == 384


@pytest.mark.slow
def test_the_shipped_model_keeps_tenants_apart_and_handles_odd_input(minilm_kb: KnowledgeBase) -> None:
    for retriever in RETRIEVERS:
        hits = minilm_kb.retrieve(GLOBEX_QUESTION, "acme", top_k=10, retriever=retriever)
        assert all(hit.doc_id.startswith("acme-") for hit in hits)
        assert (
            minilm_kb.retrieve(GLOBEX_QUESTION, "globex", top_k=1, retriever=retriever)[0].doc_id
            == "globex-refunds"
        )
    for question in ODD_QUESTIONS:
        answer = minilm_kb.answer(question, "acme", top_k=3, cut_off=0.35)
        assert answer.text in (IDK_TEXT, LANGUAGE_TEXT) or "Source: " in answer.text
    off_topic = minilm_kb.answer("What is the airspeed of an unladen swallow?", "acme", top_k=3, cut_off=0.35)
    assert not off_topic.answered


def test_a_follow_up_read_with_its_topic_quotes_what_it_asks(kb: KnowledgeBase) -> None:
    """The topic finds the article; the follow-up's own words choose the passage (not the topic's answer again)."""
    from nlu.context import resolved_question

    followup = "and back to which method"
    in_context = kb.lookup(resolved_question(REFUND_QUESTION, followup), "acme", top_k=3)
    assert kb.extract(in_context, cut_off=0.0).text.startswith("Any customer can ask")  # the topic's answer
    focused = in_context.focused_on(kb.lookup(followup, "acme", top_k=3))
    # the same articles, and the same question for the cache and the LLM tiers
    assert focused.hits == in_context.hits and focused.question == in_context.question
    assert focused.focus == followup
    assert kb.extract(focused, cut_off=0.0).text.startswith("Refunds go back to the original payment method")
    refused = kb.lookup("", "acme")
    assert in_context.focused_on(refused) is in_context  # nothing of its own to focus on
    # the topic's weight: at 0 the passage is chosen by the follow-up's own vector alone
    own = kb.lookup(followup, "acme", top_k=3)
    alone = in_context.focused_on(own, topic_weight=0.0)
    cosine = float(np.dot(alone.query_vector, own.query_vector)) / (
        float(np.linalg.norm(alone.query_vector)) * float(np.linalg.norm(own.query_vector))
    )
    assert cosine > 0.9999


def test_a_tenants_score_on_the_overall_scale_puts_its_line_on_the_overall_one() -> None:
    line, overall = 0.0285, 0.2941  # Globex's line and the overall one of the index built in the pipeline
    assert overall_scale(line, line, overall) == overall
    assert overall_scale(0.0, line, overall) == 0.0 and overall_scale(1.0, line, overall) == 1.0
    grid = [i / 200 for i in range(201)]
    mapped = [overall_scale(s, line, overall) for s in grid]
    assert mapped == sorted(mapped) and len(set(mapped)) == len(mapped)  # order kept
    assert all((m >= overall) == (s >= line) for s, m in zip(grid, mapped, strict=True))  # and the side
    assert overall_scale(line - 1e-12, line, overall) < overall
    assert overall_scale(0.45, line, overall) == pytest.approx(0.6, abs=0.01)  # tier 0 from 0.45, not 0.60
    # a tenant on the overall line, and odd input, are left as they are (clipped to [0, 1])
    assert overall_scale(0.37, overall, overall) == 0.37 and overall_scale(1.7, line, overall) == 1.0
    assert overall_scale(-0.2, line, overall) == 0.0 and overall_scale(0.37, 0.0, overall) == 0.37
