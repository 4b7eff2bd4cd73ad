"""Knowledge gaps: failed answerable turns replayed against the index, sorted by cause, written as Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.evaluation.checks import TurnResult
from app.evaluation.conversations import Expect
from app.evaluation.gaps import CAUSES, find_gaps, gaps_markdown
from app.evaluation.player import PlayedTurn


@dataclass
class Hit:
    doc_id: str
    section: str
    score: float


@dataclass
class Chunk:
    doc_id: str
    section: str
    tenant: str
    text: str


@dataclass
class Found:
    hits: list[Hit]
    confidence: float
    refused: str | None = None


@dataclass
class FakeKb:
    """What :func:`find_gaps` uses of a KnowledgeBase: lookups by text, the cut-off, the chunks."""

    answers: dict[str, Found]
    cut_off: float = 0.4
    chunks: list[Chunk] = field(
        default_factory=lambda: [
            Chunk(
                "delivery-times", "Standard delivery times", "acme", "| Portugal | **4–7** business days |"
            ),
            Chunk("payment-methods", "Online", "acme", "- **Cards:** Visa and Mastercard."),
        ]
    )
    asked: list[tuple[str, str, int]] = field(default_factory=list)

    def cut_off_for(self, tenant: str) -> float:
        return self.cut_off

    def lookup(self, text: str, tenant: str, top_k: int) -> Found:
        self.asked.append((text, tenant, top_k))
        return self.answers[text]


def turn(text: str, handler: str, reply: str, failures: list[str], **expect: object) -> TurnResult:
    played = PlayedTurn("conv", 1, "user", text, "r1", 200, [{"text": reply}])
    record = {"handler": handler, "sources": expect.pop("cited", [])}
    return TurnResult("conv", 1, text, Expect(handler="knowledge", **expect), played, record, failures)


DELIVERY = [Hit("delivery-times", "Standard delivery times", 0.7), Hit("payment-methods", "Online", 0.3)]


def test_each_failed_answerable_turn_gets_the_first_cause_that_holds() -> None:
    kb = FakeKb(
        {
            "amex?": Found([Hit("payment-methods", "Online", 0.5)], 0.9),
            "portugal?": Found(DELIVERY, 0.2),
            "no wait, portugal": Found(DELIVERY, 0.9),
            "klarna fee?": Found([Hit("payment-methods", "Online", 0.4)], 0.9),
            "how long to portugal?": Found(DELIVERY, 0.9),
            "fine": Found(DELIVERY, 0.9),
        }
    )
    results = [
        turn(
            "amex?",
            "knowledge",
            "We take cards.",
            ["does not say 'Amex'"],
            source=["payment-methods"],
            says=["Amex"],
        ),
        turn("portugal?", "idk", "I don't know", ["handler idk"], source=["delivery-times"], says=["4-7"]),
        turn("no wait, portugal", "chitchat", "Alright.", ["handler chitchat"], source=["delivery-times"]),
        turn("klarna fee?", "knowledge", "Cards.", ["cites payment-methods"], source=["pay-later"]),
        turn(
            "how long to portugal?",
            "knowledge",
            "Germany: 1-2",
            ["no '4-7'"],
            source=["delivery-times"],
            says=["4-7"],
        ),
    ]
    passed = turn("fine", "knowledge", "4-7 business days", [], source=["delivery-times"], says=["4-7"])
    gaps = find_gaps([*results, passed], {"conv": "acme"}, kb, top_k=3)
    assert [gap.cause for gap in gaps] == list(CAUSES[:1] + CAUSES[3:4] + CAUSES[1:3] + CAUSES[4:])
    assert kb.asked[0] == ("amex?", "acme", 3) and len(kb.asked) == 5  # a passed turn is not replayed
    amex, portugal = gaps[0], gaps[1]
    assert amex.facts == {"Amex": []}  # stated nowhere: the article to extend
    assert portugal.facts == {"4-7": ["delivery-times › Standard delivery times"]}  # "4–7" in bold, en dash
    assert portugal.expected_rank == 1 and portugal.confidence == 0.2 and portugal.cut_off == 0.4
    assert gaps[3].expected_rank is None and gaps[3].cited == []


def test_the_report_counts_the_causes_and_shows_what_was_retrieved() -> None:
    kb = FakeKb({"portugal?": Found(DELIVERY, 0.2)})
    gaps = find_gaps(
        [turn("portugal?", "idk", "I don't know", ["handler idk"], source=["delivery-times"], says=["4-7"])],
        {"conv": "acme"},
        kb,
    )
    text = gaps_markdown(gaps, "# Knowledge gaps (test)")
    assert text.startswith("# Knowledge gaps (test)\n")
    assert "| below the cut-off | 1 |" in text and "| not in the articles | 0 |" in text
    assert "## Below the cut-off (1)" in text and "## Not in the articles" not in text
    assert "- **conv #1** (acme, answered by idk): portugal?" in text
    assert "retrieved (confidence 0.2, cut-off 0.4): delivery-times › Standard delivery times (0.7)" in text
    assert "should say '4-7': in delivery-times › Standard delivery times" in text


def test_a_follow_up_is_replayed_with_the_question_the_bot_read() -> None:
    """The served bot reads "and to portugal?" with the conversation's topic; the replay must look up what it
    read (the record's ``question``), not the message alone, or the report describes a lookup that never ran."""
    read = "how long does delivery take? and to portugal?"
    kb = FakeKb(
        {read: Found(DELIVERY, 0.9), "and to portugal?": Found([Hit("payment-methods", "Online", 0.3)], 0.1)}
    )
    result = turn(
        "and to portugal?", "knowledge", "Germany: 1-2", ["no '4-7'"], source=["delivery-times"], says=["4-7"]
    )
    result.record["question"] = read
    gaps = find_gaps([result], {"conv": "acme"}, kb)
    assert kb.asked == [(read, "acme", 3)]
    assert gaps[0].read == read and gaps[0].expected_rank == 1 and gaps[0].cause == CAUSES[4]
    text = gaps_markdown(gaps, "# Knowledge gaps (test)")
    assert f"  - read as: {read}" in text
    # a turn the knowledge action never read (no question recorded) is replayed on its own text
    kb.asked.clear()
    alone = turn("and to portugal?", "chitchat", "Alright.", ["handler chitchat"], source=["delivery-times"])
    assert find_gaps([alone], {"conv": "acme"}, kb)[0].read == "and to portugal?"
    assert "  - read as:" not in gaps_markdown(find_gaps([alone], {"conv": "acme"}, kb), "# t")
