"""The extractive answer: sentences of a chunk's Markdown, the best ones quoted with their source."""

from __future__ import annotations

import numpy as np

from knowledge.extractive import MAX_ANSWER_CHARS, ExtractiveAnswerer, split_sentences
from knowledge.retrievers import Hit

from .conftest import HashingEmbedding


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


REFUNDS = Hit(
    "acme-refunds",
    "Refund policy",
    "Who can ask for a refund",
    "Any customer can ask for a refund within 30 days of delivery. Opened software cannot be refunded.",
    0.9,
    chunk_id="c1",
)
SHIPPING = Hit(
    "acme-shipping", "Shipping times", "", "Express delivery arrives the next business day.", 0.5, "c2"
)


def test_the_best_sentence_is_quoted_with_its_source_and_every_source_is_listed() -> None:
    embed = HashingEmbedding()
    answerer = ExtractiveAnswerer(embed)
    vector = np.asarray(embed.get_query_embedding("ask for a refund within 30 days"))
    text, sources = answerer.answer(vector, [REFUNDS, SHIPPING])
    assert text == (
        "Any customer can ask for a refund within 30 days of delivery.\n\n"
        "Source: Refund policy › Who can ask for a refund"
    )
    assert [source["doc_id"] for source in sources] == ["acme-refunds", "acme-shipping"]


def test_without_a_query_vector_the_best_chunk_is_quoted_from_its_start() -> None:
    long = Hit("acme-long", "Long", "", "word " * 400, 0.9, chunk_id="c3")
    text, sources = ExtractiveAnswerer(HashingEmbedding()).answer(None, [long])
    passage = text.split("\n\nSource: ")[0]
    assert passage.endswith(" …") and len(passage) <= MAX_ANSWER_CHARS + 2
    assert text.endswith("Source: Long") and sources == [long.source()]
