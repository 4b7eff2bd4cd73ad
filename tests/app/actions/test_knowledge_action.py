from __future__ import annotations

import pytest

from app.actions.knowledge import UNAVAILABLE, ActionAnswerKnowledge

pytestmark = pytest.mark.anyio


async def test_missing_index_degrades_to_a_clear_message(tracker_from, dispatcher, domain):
    tracker = tracker_from("order_question", text="How long is delivery?")
    assert await ActionAnswerKnowledge().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages[0]["text"] == UNAVAILABLE


async def test_a_failing_knowledge_base_degrades_to_the_same_message(
    tracker_from, dispatcher, domain, monkeypatch
):
    from app.actions import services

    class Broken:
        version = "v"

        def answer(self, *args):
            raise RuntimeError("index corrupted")

    monkeypatch.setattr(services, "knowledge", lambda: Broken())
    tracker = tracker_from("order_question", text="How long is delivery?")
    assert await ActionAnswerKnowledge().run(dispatcher, tracker, domain) == []
    assert dispatcher.messages[0]["text"] == UNAVAILABLE


def test_sources_follow_the_citations_else_the_two_best_hits():
    from types import SimpleNamespace

    from app.orchestration.answering import with_sources

    hits = [SimpleNamespace(source_label=label) for label in ("Returns › Window", "Refunds › Timing", "FAQ")]
    assert with_sources("Within 5 days [2].", hits) == "Within 5 days [2].\n\nSources: [2] Refunds › Timing"
    assert with_sources("A [3][1] B [3] C [9]", hits).endswith("Sources: [3] FAQ; [1] Returns › Window")
    assert with_sources("Your order has shipped.", hits).endswith(
        "Sources: Returns › Window; Refunds › Timing"
    )
    assert with_sources("No hits.", []) == "No hits."


def test_a_message_none_of_whose_words_the_articles_know_is_asked_about():
    from types import SimpleNamespace

    from app.actions.knowledge import no_word_known

    def found(unknown: float | None) -> SimpleNamespace:
        return SimpleNamespace(features={} if unknown is None else {"unknown": unknown})

    assert no_word_known("retrn or refnd??", found(1.0))  # misspelt: ask "did you mean ...?"
    assert not no_word_known("is there a discount for teachers?", found(0.7))  # "discount" is known: IDK
    assert not no_word_known("how?", found(1.0))  # no words of its own to be unknown
    assert not no_word_known("retrn or refnd??", found(None))  # not looked up (refused): no such signal
    assert not no_word_known("/ask_product@0.9", found(1.0))  # a payload: no words of the user's
