"""The project's own question files: every dev label (of the dev questions and the dev follow-ups) names a real
document, section and passage, and no dev question repeats another dev question or a gold one (the gold set stays
held out); no dev follow-up repeats one, nor a message of the conversation test sets."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from app.evaluation.conversations import load
from knowledge.documents import load_documents
from knowledge.gold import load_gold
from knowledge.passages import parse_blocks
from tests.conftest import ROOT

DEV = ROOT / "knowledge" / "eval" / "dev.yml"
GOLD = ROOT / "knowledge" / "eval" / "gold.yml"
FOLLOWUPS = ROOT / "knowledge" / "eval" / "followups.yml"


def _words(text: str) -> str:
    """A question compared without case, punctuation or spacing: "Do u ship?" repeats "do u  ship"."""
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _section_texts() -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Each article's tenant, and the chat rendering of each of its ``##`` sections (as the ranker sees it)."""
    documents = load_documents(ROOT / "knowledge" / "sources.yml").documents
    tenants, texts = {}, {}
    for document in documents:
        doc_id = document.metadata["doc_id"]
        tenants[doc_id] = document.metadata["tenant"]
        for part in re.split(r"(?m)^## ", document.text)[1:]:
            heading, _, body = part.partition("\n")
            texts[(doc_id, heading.strip())] = "\n".join(block.render() for block in parse_blocks(body))
    return tenants, texts


@pytest.mark.parametrize("path", [DEV, FOLLOWUPS], ids=["dev", "followups"])
def test_every_dev_label_names_a_document_section_and_passage_of_the_articles(path) -> None:
    tenants, texts = _section_texts()
    problems = []
    for question in load_gold(path):
        for doc_id in question.doc_ids:
            if tenants.get(doc_id) != question.tenant:
                problems.append(f"{question.id}: no {question.tenant} article {doc_id!r}")
        labelled = [texts[(d, s)] for d in question.doc_ids for s in question.sections if (d, s) in texts]
        problems += [
            f"{question.id}: no section {section!r} in {list(question.doc_ids)}"
            for section in question.sections
            if not any((doc_id, section) in texts for doc_id in question.doc_ids)
        ]
        problems += [
            f"{question.id}: passage {passage!r} is in none of its sections"
            for passage in question.passages
            if not any(_words(passage) in _words(text) for text in labelled)
        ]
    assert problems == []


def test_no_dev_question_repeats_another_dev_question_or_a_gold_question() -> None:
    dev = load_gold(DEV)
    repeated = [text for text, n in Counter(_words(q.question) for q in dev).items() if n > 1]
    assert repeated == []
    gold = {_words(q.question) for q in load_gold(GOLD)}
    assert [q.id for q in dev if _words(q.question) in gold] == []


def test_every_dev_follow_up_leans_on_a_question_and_repeats_no_other_question_or_test_message() -> None:
    followups = load_gold(FOLLOWUPS)
    assert followups and all(q.after and q.sections for q in followups)
    asked = Counter(_words(q.question) for q in followups)
    assert [text for text, n in asked.items() if n > 1] == []
    others = {_words(q.question) for path in (DEV, GOLD) for q in load_gold(path)}
    for path in sorted((ROOT / "nlu" / "conversations").glob("*.yml")):
        others |= {_words(t.user) for c in load(path).conversations for t in c.turns if t.user}
    assert [q.id for q in followups if _words(q.question) in others or _words(q.after) in others] == []
