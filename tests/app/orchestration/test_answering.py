"""The one lookup per question and the router's Turn built from it (app/orchestration/answering.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.orchestration.answering import knowledge_turn


class FakeKB:
    """A knowledge base whose lookup always finds one chunk at ``confidence``."""

    cut_off = 0.3

    def __init__(self, confidence: float) -> None:
        self.confidence = confidence

    def lookup(self, text: str, tenant_id: str, top_k: int) -> SimpleNamespace:
        return SimpleNamespace(
            refused=False, confidence=self.confidence, dense_margin=0.1, supporting_docs=lambda cut_off: 1
        )


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("can she still send it back mid january?", True),
        ("how do i see how much is left on it", True),
        ("the link in the email says invalid", False),
        ("alright thx", False),
    ],
)
def test_the_turn_says_whether_the_message_asks_a_question(text: str, question: bool) -> None:
    turn, _ = knowledge_turn(FakeKB(0.5), text, "acme", intent="nlu_fallback", confidence=0.4, top_k=5)
    assert turn.question is question
    assert turn.cut_off == 0.3 and turn.retrieval_confidence == 0.5


def test_an_unsure_question_the_articles_answer_is_a_knowledge_turn() -> None:
    from app.orchestration.router import decide

    turn, _ = knowledge_turn(FakeKB(0.5), "when will it be back?", "acme", intent="nlu_fallback",
                             confidence=0.4, top_k=5)  # fmt: skip
    assert decide(turn, log=False).rule == "unsure_intent_question"
    turn, _ = knowledge_turn(FakeKB(0.2), "when will it be back?", "acme", intent="nlu_fallback",
                             confidence=0.4, top_k=5)  # fmt: skip
    assert decide(turn, log=False).handler == "fallback"
