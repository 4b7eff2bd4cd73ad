"""Tenant-scoped retrieval and the extractive answer, with the hashing embedding and once with MiniLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.embeddings import local_embed_model
from knowledge.index import build_index
from knowledge.retrieval import IDK_TEXT, MAX_QUESTION_CHARS, KnowledgeBase, clean_question, split_sentences

from .conftest import DOCS, HashingEmbedding, write_docs

GLOBEX_QUESTION = "globex customers zebra refund code within 14 days"


@pytest.fixture
def kb(built, sources: Path, embed_model: HashingEmbedding) -> KnowledgeBase:
    return KnowledgeBase.load(sources.parent / "index", embed_model=embed_model)


def test_retrieve_ranks_the_tenants_chunks(kb: KnowledgeBase) -> None:
    hits = kb.retrieve("How many days do I have to ask for a refund?", "acme", top_k=3)
    assert len(hits) == 3
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    best = hits[0]
    assert (best.doc_id, best.title, best.section) == (
        "acme-refunds",
        "Refund policy",
        "Who can ask for a refund",
    )
    assert "within 30 days" in best.text


def test_a_tenant_never_sees_another_tenants_chunks(kb: KnowledgeBase) -> None:
    assert kb.retrieve(GLOBEX_QUESTION, "globex", top_k=5)[0].doc_id == "globex-refunds"
    acme_hits = kb.retrieve(GLOBEX_QUESTION, "acme", top_k=10)
    assert acme_hits and all(hit.doc_id.startswith("acme-") for hit in acme_hits)
    answer = kb.answer(GLOBEX_QUESTION, "acme", top_k=10, min_score=0.0)
    assert "zebra" not in answer.text.lower()
    assert all(source["doc_id"] != "globex-refunds" for source in answer.sources)
    assert kb.retrieve(GLOBEX_QUESTION, "initech", top_k=5) == []


def test_the_answer_quotes_the_best_sentence_and_names_its_source(kb: KnowledgeBase) -> None:
    answer = kb.answer("How many days do I have to ask for a refund?", "acme", top_k=3, min_score=0.2)
    assert answer.answered
    assert answer.text.startswith("Any customer can ask for a refund within 30 days of delivery.")
    assert "Opened software" not in answer.text  # the less similar sentence of the chunk is left out
    assert answer.text.endswith("Source: Refund policy › Who can ask for a refund")
    assert answer.sources[0] == {
        "doc_id": "acme-refunds",
        "title": "Refund policy",
        "section": "Who can ask for a refund",
    }
    assert answer.confidence == pytest.approx(
        kb.retrieve("How many days do I have to ask for a refund?", "acme")[0].score
    )


def test_below_the_cut_off_it_does_not_know_and_offers_a_human(kb: KnowledgeBase) -> None:
    question = "How many days do I have to ask for a refund?"
    best = kb.retrieve(question, "acme", top_k=1)[0].score
    answer = kb.answer(question, "acme", top_k=3, min_score=best + 0.01)
    assert not answer.answered
    assert answer.text == IDK_TEXT
    assert "human agent" in answer.text
    assert answer.sources == []
    assert answer.confidence == pytest.approx(best)


@pytest.mark.parametrize(
    "question", ["", "   \n\t ", "x" * 10_000, "退款需要多长时间？", "Сколько дней на возврат?"]
)
def test_odd_questions_never_raise(kb: KnowledgeBase, question: str) -> None:
    answer = kb.answer(question, "acme", top_k=3, min_score=0.2)
    assert answer.answered in (True, False)
    assert answer.text
    if not answer.answered:
        assert answer.text == IDK_TEXT
    assert isinstance(kb.retrieve(question, "acme", top_k=3), list)


def test_empty_questions_are_not_answered(kb: KnowledgeBase) -> None:
    for question in ("", "  \n "):
        assert kb.retrieve(question, "acme", top_k=3) == []
        assert not kb.answer(question, "acme", top_k=3, min_score=0.0).answered


def test_a_long_question_is_cut_before_embedding(kb: KnowledgeBase) -> None:
    question = "How many days do I have to ask for a refund? " + "padding " * 5_000
    assert len(clean_question(question)) == MAX_QUESTION_CHARS
    assert kb.answer(question, "acme", top_k=3, min_score=0.0).answered


def test_top_k_must_be_positive(kb: KnowledgeBase) -> None:
    with pytest.raises(ValueError, match="top_k"):
        kb.retrieve("refund", "acme", top_k=0)


def test_load_checks_the_index_and_the_model(built, sources: Path, tmp_path: Path) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding())
    assert kb.version == built.kb_version == kb.manifest["kb_version"]
    with pytest.raises(ValueError, match="was built with"):
        KnowledgeBase.load(sources.parent / "index", embed_model=HashingEmbedding(model_name="other"))
    with pytest.raises(FileNotFoundError, match="no knowledge index"):
        KnowledgeBase.load(tmp_path / "nowhere", embed_model=HashingEmbedding())


def test_split_sentences_handles_markdown_lists_tables_and_headings() -> None:
    text = (
        "### Steps\n1. Open **Billing**. Then click Refund.\n- Wait 5 days.\n"
        "| Plan | Cost |\n|---|---|\n| Pay in 3 | Free. No interest. |\n```\ncode\n```"
    )
    assert split_sentences(text) == [
        "Open Billing.",
        "Then click Refund.",
        "Wait 5 days.",
        "Plan: Cost",
        "Pay in 3: Free.",
        "No interest.",
        "code",
    ]


@pytest.fixture(scope="module")
def minilm_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """The tiny knowledge base built and read with the shipped MiniLM model (a few seconds)."""
    root = tmp_path_factory.mktemp("minilm")
    sources = write_docs(root, DOCS)
    build_index(sources, root / "index", 256, 32, local_embed_model(), show_progress=False)
    return KnowledgeBase.load(root / "index")


@pytest.mark.slow
def test_the_shipped_model_answers_a_paraphrase_with_its_source(minilm_kb: KnowledgeBase) -> None:
    answer = minilm_kb.answer("When will I get my money back?", "acme", top_k=3, min_score=0.3)
    assert answer.answered
    assert "original payment method" in answer.text
    assert answer.text.endswith("Source: Refund policy › How refunds are paid")
    assert minilm_kb.manifest["embedding_model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    assert minilm_kb.manifest["embedding_dim"] == 384


@pytest.mark.slow
def test_the_shipped_model_keeps_tenants_apart_and_handles_odd_input(minilm_kb: KnowledgeBase) -> None:
    assert all(
        hit.doc_id.startswith("acme-") for hit in minilm_kb.retrieve(GLOBEX_QUESTION, "acme", top_k=10)
    )
    assert minilm_kb.retrieve(GLOBEX_QUESTION, "globex", top_k=1)[0].doc_id == "globex-refunds"
    for question in ("x" * 10_000, "退款需要多长时间？", "   "):
        answer = minilm_kb.answer(question, "acme", top_k=3, min_score=0.35)
        assert answer.text == IDK_TEXT or "Source: " in answer.text
    off_topic = minilm_kb.answer(
        "What is the airspeed of an unladen swallow?", "acme", top_k=3, min_score=0.35
    )
    assert not off_topic.answered
