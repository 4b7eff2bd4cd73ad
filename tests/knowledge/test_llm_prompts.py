"""The versioned LLM prompts: files under knowledge/prompts, numbered excerpts with their sources."""

from __future__ import annotations

from knowledge.llm_prompts import PROMPTS_DIR, build_messages, system_prompt
from knowledge.retrieval import MAX_QUESTION_CHARS, clean_question

from .test_grounding import HITS, QUESTION, SYSTEM


def test_the_prompts_are_files_and_number_the_excerpts() -> None:
    assert {"answer_system.md", "answer_user.md", "context_item.md"} <= {
        p.name for p in PROMPTS_DIR.iterdir()
    }
    system, user = build_messages(QUESTION, HITS)
    assert system == {"role": "system", "content": SYSTEM.strip()}
    assert system["content"] == system_prompt() and "NO_ANSWER" in system["content"]
    assert "[1] Refund policy › Who can ask for a refund\nAny customer" in user["content"]
    assert "[2] Refund policy › How refunds are paid" in user["content"]
    assert user["content"].rstrip().endswith("reply NO_ANSWER.") and QUESTION in user["content"]


def test_a_10000_character_question_is_cut_before_it_reaches_the_prompt() -> None:
    question = clean_question(QUESTION + " " + "z" * 10_000)
    assert len(question) == MAX_QUESTION_CHARS
    assert len(build_messages(question, HITS[:1])[1]["content"]) < 3_000
