"""The versioned prompts of LLM answers over knowledge-base excerpts (used by the tiers in :mod:`app.llm`).

The prompts are files under version control: ``knowledge/prompts/answer_system.md``, ``answer_user.md``
and ``context_item.md`` (``string.Template`` placeholders: ``$context``, ``$question``, ``$number``,
``$source``, ``$text``). The system prompt asks for answers that cite the numbered excerpts as ``[n]``
and for ``NO_ANSWER`` when the excerpts do not answer; :mod:`knowledge.grounding` checks the replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import Protocol

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"


class Excerpt(Protocol):
    """What a numbered excerpt shows the model: where it is from, and its text."""

    @property
    def source_label(self) -> str: ...

    @property
    def text(self) -> str: ...


@lru_cache(maxsize=8)
def load_prompt(name: str) -> Template:
    """A prompt template from ``knowledge/prompts/<name>.md``."""
    return Template((PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8").strip())


def system_prompt() -> str:
    """The system prompt as the model sees it (what :func:`knowledge.grounding.leaks_prompt` guards)."""
    return load_prompt("answer_system").safe_substitute()


def build_messages(question: str, excerpts: Sequence[Excerpt]) -> list[dict[str, str]]:
    """The chat messages: the system prompt, then the numbered excerpts and the question."""
    item = load_prompt("context_item")
    context = "\n\n".join(
        item.safe_substitute(number=i, source=excerpt.source_label, text=excerpt.text.strip())
        for i, excerpt in enumerate(excerpts, start=1)
    )
    return [
        {"role": "system", "content": system_prompt()},
        {
            "role": "user",
            "content": load_prompt("answer_user").safe_substitute(context=context, question=question),
        },
    ]
