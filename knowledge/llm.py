"""The LLM answerer: retrieved chunks -> numbered context -> an OpenAI-compatible chat model -> a checked answer.

Configuration comes from the environment (no secrets in params or git):

- ``SWITCHBOARD_LLM_BASE_URL``: the OpenAI-compatible endpoint (``http://host:port/v1``); unset = no LLM;
- ``SWITCHBOARD_LLM_MODEL`` (default ``default``), ``SWITCHBOARD_LLM_API_KEY`` (default ``none``),
  ``SWITCHBOARD_LLM_TIMEOUT_S`` (default 10).

The prompts are files under version control: ``knowledge/prompts/answer_system.md``,
``answer_user.md`` and ``context_item.md`` (``string.Template`` placeholders: ``$context``,
``$question``, ``$number``, ``$source``, ``$text``).

Every reply is validated (:func:`validate`) before the user sees it: it must cite at least one
excerpt and only excerpts that exist, stay within the length limit, not repeat the system prompt,
and be grounded: its content words must mostly occur in the cited excerpts and every number in it
must occur there. A reply that fails, or an endpoint that times out or errors, yields the extractive
answer instead, with :attr:`~knowledge.retrieval.Answer.fallback_reason` saying why. A model that
replies ``NO_ANSWER`` makes the bot say it does not know.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from knowledge.retrieval import Answer, Hit

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
NO_ANSWER = "NO_ANSWER"
#: A system-prompt passage of this many words found in a reply counts as a leak.
LEAK_SHINGLE_WORDS = 6

_CITATION = re.compile(r"\[(\d+)\]")
_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "all",
        "also",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yes",
        "please",
        "can't",
        "don't",
        "won't",
        "isn't",
        "aren't",
        "it's",
    ]
)


@dataclass(frozen=True)
class LLMConfig:
    """Where the chat model is and how the answerer treats it."""

    base_url: str
    model: str = "default"
    api_key: str = "none"
    timeout_s: float = 10.0
    max_tokens: int = 300
    max_answer_chars: int = 800
    max_contexts: int = 5
    min_grounding: float = 0.6
    max_retries: int = 0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, prefix: str = "SWITCHBOARD_LLM_"
    ) -> LLMConfig | None:
        """The configuration in ``<prefix>BASE_URL`` etc., or None when no base URL is set."""
        env = os.environ if environ is None else environ
        base_url = (env.get(f"{prefix}BASE_URL") or "").strip()
        if not base_url:
            return None
        return cls(
            base_url=base_url,
            model=env.get(f"{prefix}MODEL") or "default",
            api_key=env.get(f"{prefix}API_KEY") or "none",
            timeout_s=float(env.get(f"{prefix}TIMEOUT_S") or 10.0),
        )


@lru_cache(maxsize=8)
def load_prompt(name: str) -> Template:
    """A prompt template from ``knowledge/prompts/<name>.md``."""
    return Template((PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8").strip())


def build_messages(question: str, hits: Sequence[Hit]) -> list[dict[str, str]]:
    """The chat messages: the system prompt, then the numbered excerpts and the question."""
    item = load_prompt("context_item")
    context = "\n\n".join(
        item.safe_substitute(number=i, source=hit.source_label, text=hit.text.strip())
        for i, hit in enumerate(hits, start=1)
    )
    return [
        {"role": "system", "content": load_prompt("answer_system").safe_substitute()},
        {
            "role": "user",
            "content": load_prompt("answer_user").safe_substitute(context=context, question=question),
        },
    ]


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`validate`: ``ok``, or the reason the reply is rejected."""

    ok: bool
    reason: str = ""
    cited: tuple[int, ...] = ()
    abstained: bool = False
    grounding: float = 0.0


def content_words(text: str) -> list[str]:
    """Lower-cased words and numbers of ``text`` without stop words and citation marks."""
    return [w for w in _WORD.findall(_CITATION.sub(" ", text.lower())) if w not in _STOPWORDS and len(w) > 1]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def validate(
    reply: str,
    contexts: Sequence[str],
    *,
    system_prompt: str,
    max_chars: int = 800,
    min_grounding: float = 0.6,
    extra_sources: Sequence[str] = (),
) -> Verdict:
    """Check an LLM reply against the excerpts it was given (see the module docstring).

    ``extra_sources``: texts the reply may also draw on without citing them (tool results, e.g. the user's
    order): with any, a reply that cites nothing is checked against all excerpts and extra sources together.
    """
    text = reply.strip()
    if not text:
        return Verdict(False, "empty reply")
    if text.strip(" .\"'`").upper() == NO_ANSWER:
        return Verdict(True, abstained=True)
    if len(text) > max_chars:
        return Verdict(False, f"reply too long ({len(text)} > {max_chars} characters)")
    if leaks_prompt(text, system_prompt):
        return Verdict(False, "reply repeats the system prompt")
    cited = tuple(dict.fromkeys(int(n) for n in _CITATION.findall(text)))
    if not cited and not extra_sources:
        return Verdict(False, "reply cites no excerpt")
    unknown = [n for n in cited if not 1 <= n <= len(contexts)]
    if unknown:
        return Verdict(
            False, f"reply cites excerpt(s) that do not exist: {', '.join(map(str, unknown))}", cited
        )
    source = " ".join([*(contexts[n - 1] for n in cited or range(1, len(contexts) + 1)), *extra_sources])
    source_words = {_stem(w) for w in content_words(source)}
    words = content_words(text)
    grounding = sum(_stem(w) in source_words for w in words) / len(words) if words else 0.0
    numbers = set(_NUMBER.findall(_CITATION.sub(" ", text))) - set(_NUMBER.findall(source))
    if numbers:
        return Verdict(
            False, f"reply states numbers not in the cited excerpts: {', '.join(sorted(numbers))}", cited
        )
    if grounding < min_grounding:
        return Verdict(
            False,
            f"reply is not grounded in the cited excerpts ({grounding:.0%} of its words)",
            cited,
            grounding=grounding,
        )
    return Verdict(True, cited=cited, grounding=grounding)


def leaks_prompt(text: str, system_prompt: str, words: int = LEAK_SHINGLE_WORDS) -> bool:
    """True when ``text`` contains a run of ``words`` consecutive words of ``system_prompt``."""
    prompt = re.findall(r"[a-z0-9]+", system_prompt.lower())
    reply = " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "
    return any(
        f" {' '.join(prompt[i : i + words])} " in reply for i in range(max(0, len(prompt) - words + 1))
    )


class LLMAnswerer:
    """Answers with an OpenAI-compatible chat model; falls back to the extractive answer (see module)."""

    def __init__(self, config: LLMConfig, client: Any = None):
        import openai

        self.config = config
        self.client = client or openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            timeout=config.timeout_s,
            max_retries=config.max_retries,
        )

    def complete(self, question: str, hits: Sequence[Hit]) -> str:
        """The raw reply of the model (raises the openai client's errors)."""
        response = self.client.chat.completions.create(
            model=self.config.model,
            messages=build_messages(question, hits),
            temperature=0,
            max_tokens=self.config.max_tokens,
        )
        return response.choices[0].message.content or "" if response.choices else ""

    def answer(self, question: str, hits: Sequence[Hit], extractive: Answer) -> Answer:
        """The validated LLM answer for ``question`` over ``hits``, else ``extractive`` with the reason."""
        import openai

        from knowledge.retrieval import IDK_TEXT

        contexts = list(hits[: self.config.max_contexts])
        try:
            reply = self.complete(question, contexts)
        except openai.APITimeoutError:
            return replace(extractive, fallback_reason=f"LLM timed out after {self.config.timeout_s:g} s")
        except openai.APIStatusError as exc:
            return replace(extractive, fallback_reason=f"LLM endpoint answered HTTP {exc.status_code}")
        except (openai.OpenAIError, ValueError) as exc:  # connection errors, malformed bodies
            return replace(extractive, fallback_reason=f"LLM call failed: {type(exc).__name__}")
        verdict = validate(
            reply,
            [hit.text for hit in contexts],
            system_prompt=load_prompt("answer_system").safe_substitute(),
            max_chars=self.config.max_answer_chars,
            min_grounding=self.config.min_grounding,
        )
        if verdict.abstained:
            return replace(
                extractive,
                text=IDK_TEXT,
                sources=[],
                answered=False,
                mode="idk",
                fallback_reason="LLM found no answer in the retrieved excerpts",
            )
        if not verdict.ok:
            return replace(extractive, fallback_reason=f"LLM answer rejected: {verdict.reason}")
        cited = [contexts[n - 1] for n in verdict.cited]
        lines = [f"[{n}] {contexts[n - 1].source_label}" for n in verdict.cited]
        sources: list[dict[str, str]] = []
        for hit in cited:
            if hit.source() not in sources:
                sources.append(hit.source())
        return replace(
            extractive,
            text=f"{reply.strip()}\n\nSources: " + "; ".join(lines),
            sources=sources,
            mode="llm",
            fallback_reason=None,
        )


def answerer_from_env(environ: Mapping[str, str] | None = None) -> LLMAnswerer | None:
    """An :class:`LLMAnswerer` when ``SWITCHBOARD_LLM_BASE_URL`` is set, else None."""
    config = LLMConfig.from_env(environ)
    return LLMAnswerer(config) if config is not None else None
