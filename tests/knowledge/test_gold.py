"""The gold question file: reading, the checks with one clear line, and the doc ids against the index."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.gold import GoldQuestion, GoldSetError, check_gold_against_index, load_gold

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
            "questions:\n  - {id: a, question: q, kind: direct, doc_ids: [x], section: [1]}\n",
            "section must be",
        ),
        (
            "questions:\n  - {id: a, question: q, kind: unanswerable, section: S}\n",
            "has no section or passage",
        ),
        (
            "questions:\n  - {id: a, question: q, kind: direct, doc_ids: [x], passage: p}\n",
            "needs the section",
        ),
        (
            "questions:\n  - {id: a, question: q, kind: direct, doc_ids: [x], after: [1]}\n",
            "after must be the text of the question before it",
        ),
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


def test_a_question_may_name_the_sections_and_passages_that_answer_it(tmp_path: Path) -> None:
    text = (
        "questions:\n  - {id: a, question: q, kind: direct, doc_ids: [x], section: Who can ask}\n"
        "  - {id: b, question: r, kind: direct, doc_ids: [x], section: [One, Two], passage: [within 30 days, p]}\n"
    )
    first, second = load_gold(write_gold(tmp_path, text))
    assert first.sections == ("Who can ask",) and first.passages == ()
    assert second.sections == ("One", "Two") and second.passages == ("within 30 days", "p")
    assert load_gold(write_gold(tmp_path, GOLD))[0].sections == ()


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


def test_a_follow_up_names_the_question_before_it(tmp_path: Path) -> None:
    text = (
        "questions:\n  - {id: f, question: 'and to spain?', kind: paraphrase, doc_ids: [x], section: S,"
        " after: ' How long does delivery take? '}\n"
    )
    (followup,) = load_gold(write_gold(tmp_path, text))
    assert followup.after == "How long does delivery take?" and followup.question == "and to spain?"
    assert load_gold(write_gold(tmp_path, GOLD))[0].after == ""  # a question asked on its own
