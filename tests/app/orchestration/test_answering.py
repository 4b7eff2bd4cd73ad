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

    def cut_off_for(self, tenant: str) -> float:
        return {"globex": 0.1}.get(tenant, self.cut_off)

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


@pytest.mark.parametrize(
    ("text", "vague"),
    [
        ("help with payment??", True),
        ("I have a question about my bill", True),
        ("hi, problem with the app", True),
        ("question about the thing i got", True),
        ("meter thing??", True),
        ("that thing with the contract from the letter", True),
        ("hmm so about the money thing", True),
        ("sure thing", False),
        ("is this thing a robot btw", False),
        ("one more thing, how many days do I have to return stuff?", False),
        ("does the notify me thing run out at some point", False),
        ("the same thing happened again", False),
        ("help with payment: can I pay with PayPal?", False),  # says what about it
        ("I have a question about the return window for shoes bought in store", False),  # more than a subject
        ("how do I pay?", False),
        ("payment", False),
    ],
)
def test_the_turn_says_whether_the_message_names_only_a_subject(text: str, vague: bool) -> None:
    from app.orchestration.router import decide

    turn, _ = knowledge_turn(FakeKB(0.9), text, "acme", intent="ask_payment_methods", confidence=0.9, top_k=5)
    assert turn.vague is vague
    assert (decide(turn, log=False).rule == "vague") is vague
    # a "did you mean ...?" suggestion clicked for these words: they are clarified, and answered
    clicked, _ = knowledge_turn(FakeKB(0.9), text, "acme", intent="ask_payment_methods", confidence=1.0,
                                top_k=5, clarified=True)  # fmt: skip
    assert not clicked.vague and decide(clicked, log=False).handler == "knowledge"


def test_the_turn_carries_its_tenants_cut_off() -> None:
    from app.orchestration.router import decide

    acme, _ = knowledge_turn(FakeKB(0.2), "how do I read my meter?", "acme", intent="ask_billing",
                             confidence=0.9, top_k=5)  # fmt: skip
    globex, _ = knowledge_turn(FakeKB(0.2), "how do I read my meter?", "globex", intent="ask_billing",
                               confidence=0.9, top_k=5)  # fmt: skip
    assert (acme.cut_off, globex.cut_off) == (0.3, 0.1)
    assert decide(acme, log=False).handler != "knowledge" and decide(globex, log=False).handler == "knowledge"


def test_an_unsure_question_the_articles_answer_is_a_knowledge_turn() -> None:
    from app.orchestration.router import decide

    turn, _ = knowledge_turn(FakeKB(0.5), "when will it be back?", "acme", intent="nlu_fallback",
                             confidence=0.4, top_k=5)  # fmt: skip
    assert decide(turn, log=False).rule == "unsure_intent_question"
    turn, _ = knowledge_turn(FakeKB(0.2), "when will it be back?", "acme", intent="nlu_fallback",
                             confidence=0.4, top_k=5)  # fmt: skip
    assert decide(turn, log=False).handler == "fallback"
