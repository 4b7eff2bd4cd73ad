"""The one lookup per question and the router's Turn built from it (app/orchestration/answering.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.orchestration.answering import knowledge_turn
from knowledge.retrieval import KnowledgeBase


class FakeKB:
    """A knowledge base whose lookup always finds one chunk at ``confidence``; Globex has a line of its own."""

    cut_off = 0.3
    on_overall_scale = KnowledgeBase.on_overall_scale

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


def test_a_tenant_with_its_own_line_is_read_on_the_overall_scale() -> None:
    from app.orchestration.router import decide

    def routed(score: float, tenant: str):
        turn, _ = knowledge_turn(FakeKB(score), "how do I read my meter?", tenant, intent="ask_billing",
                                 confidence=0.9, top_k=5)  # fmt: skip
        return turn, decide(turn, log=False)

    # 0.2 is below Acme's line (the overall 0.3) and above Globex's own (0.1): Globex's sits above the overall one
    acme, acme_route = routed(0.2, "acme")
    globex, globex_route = routed(0.2, "globex")
    assert acme.cut_off == globex.cut_off == 0.3
    assert acme.retrieval_confidence == 0.2 and globex.retrieval_confidence == pytest.approx(
        0.3 + 0.1 * 0.7 / 0.9
    )
    assert acme_route.handler != "knowledge" and globex_route.handler == "knowledge"
    # the tier policy's thresholds (tier 1 from 0.42, tier 0 from 0.60) ask the same of both tenants: 0.5 is
    # fair for Acme (tier 1) and sure for Globex, whose 0.5 is far above its line (tier 0)
    assert routed(0.5, "acme")[1].tier == 1
    globex, globex_route = routed(0.5, "globex")
    assert globex.retrieval_confidence == pytest.approx(0.3 + 0.4 * 0.7 / 0.9) and globex_route.tier == 0


def test_an_unsure_question_the_articles_answer_is_a_knowledge_turn() -> None:
    from app.orchestration.router import decide

    turn, _ = knowledge_turn(FakeKB(0.5), "when will it be back?", "acme", intent="nlu_fallback",
                             confidence=0.4, top_k=5)  # fmt: skip
    assert decide(turn, log=False).rule == "unsure_intent_question"
    turn, _ = knowledge_turn(FakeKB(0.2), "when will it be back?", "acme", intent="nlu_fallback",
                             confidence=0.4, top_k=5)  # fmt: skip
    assert decide(turn, log=False).handler == "fallback"
