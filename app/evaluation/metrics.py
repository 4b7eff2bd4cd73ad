"""Bot-level figures from per-turn verdicts, turn records and LLM calls (definitions in one place).

- **handler accuracy**: scored turns whose handler (from the turn record) is the expected one;
- **intent accuracy**: scored turns with an expected intent whose recorded intent matches (a diagnostic);
- **task completion**: conversations in which every scored turn passed (:mod:`app.evaluation.checks`);
- **containment**: conversations no person took over (no turn handled as ``handoff``); **escalation rate**
  = 1 - containment; **correct containment**: contained *and* every turn passed;
- **"I don't know"**: on unanswerable turns (expected ``idk``): ``idk_on_unanswerable`` (share answered
  "I don't know") and ``wrong_answer_on_unanswerable`` (share answered from the articles anyway); on
  answerable ones (expected ``knowledge``): ``false_idk_on_answerable``;
- **answer similarity** to the references (ragas, offline: string similarity, semantic similarity with the
  local MiniLM, ROUGE-L) on turns expected to be answered from the articles, over what the user read
  (the ``Sources:`` line left out);
- **grounding pass rate**: LLM answers that passed the grounding check / LLM answers checked (None without
  LLM calls);
- **cost and tokens per conversation**: the LLM calls of the conversations' turns (escalations, retries,
  rejected answers and tool rounds included), mean over conversations; per 1000 conversations too;
- **latency**: p50/p95 (linear percentiles) of each turn's end-to-end time through the gateway, by the
  handler that really answered.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.analytics.stats import percentile
from app.evaluation.checks import TurnResult, answer_part
from app.evaluation.conversations import Conversation
from app.orchestration.handlers import HANDOFF, IDK, KNOWLEDGE

#: LLM call outcomes that mean "the answer was checked and failed the grounding check".
REJECTED = frozenset({"invalid"})


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _pct(values: Sequence[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None else round(value, 2)


def compute(
    conversations: Sequence[Conversation],
    results: Sequence[TurnResult],
    llm_calls: Mapping[int, Mapping[str, Any]] | None = None,
    similarity: Callable[[list[tuple[str, str, str]]], dict[str, float | None]] | None = None,
) -> dict[str, Any]:
    """The figures above. ``llm_calls``: ``{id: row}`` of the calls the records reference; ``similarity``:
    scores ``[(id, answer, reference)]`` into mean metrics (ragas), skipped when None."""
    calls = llm_calls or {}
    by_conversation: dict[str, list[TurnResult]] = defaultdict(list)
    for result in results:
        by_conversation[result.conversation].append(result)
    n_conv = len(conversations)
    completed = {c.id for c in conversations if all(r.passed for r in by_conversation[c.id])}
    escalated = {c.id for c in conversations if any(r.handler == HANDOFF for r in by_conversation[c.id])}
    contained = {c.id for c in conversations} - escalated

    with_intent = [r for r in results if r.expect.intent is not None]
    unanswerable = [r for r in results if r.expect.handler == IDK]
    answerable = [r for r in results if r.expect.handler == KNOWLEDGE]

    cost: dict[str, float] = dict.fromkeys((c.id for c in conversations), 0.0)
    tokens: dict[str, int] = dict.fromkeys((c.id for c in conversations), 0)
    checked = rejected = 0
    for result in results:
        for call_id in (result.record or {}).get("llm_call_ids") or []:
            call = calls.get(int(call_id))
            if call is None:
                continue
            cost[result.conversation] += float(call.get("cost") or 0)
            tokens[result.conversation] += int(call.get("prompt_tokens") or 0) + int(
                call.get("completion_tokens") or 0
            )
            if call.get("outcome") == "ok" or call.get("outcome") in REJECTED:
                checked += 1
                rejected += call.get("outcome") in REJECTED

    latency: dict[str, list[float]] = defaultdict(list)
    for result in results:
        if result.played.status == 200:
            latency[result.handler].append(result.played.elapsed_ms)
    similarity_means: dict[str, float | None] = {}
    if similarity is not None:
        pairs = [
            (f"{r.conversation}#{r.number}", answer_part(r.reply), r.expect.reference or "")
            for r in answerable
            if r.expect.reference
        ]
        similarity_means = similarity(pairs) if pairs else {}

    return {
        "conversations": n_conv,
        "turns": len(results),
        "handler_accuracy": _rate(sum(r.handler == r.expect.handler for r in results), len(results)),
        "intent_accuracy": _rate(sum(r.intent == r.expect.intent for r in with_intent), len(with_intent)),
        "turns_passed": _rate(sum(r.passed for r in results), len(results)),
        "task_completion": _rate(len(completed), n_conv),
        "containment": _rate(len(contained), n_conv),
        "correct_containment": _rate(len(contained & completed), n_conv),
        "escalation_rate": _rate(len(escalated), n_conv),
        "idk_on_unanswerable": _rate(sum(r.handler == IDK for r in unanswerable), len(unanswerable)),
        "wrong_answer_on_unanswerable": _rate(
            sum(r.handler == KNOWLEDGE for r in unanswerable), len(unanswerable)
        ),
        "false_idk_on_answerable": _rate(sum(r.handler == IDK for r in answerable), len(answerable)),
        "answer_similarity": similarity_means,
        "grounding_pass_rate": _rate(checked - rejected, checked),
        "llm_calls": sum(len((r.record or {}).get("llm_call_ids") or []) for r in results),
        "cost_per_conversation": round(sum(cost.values()) / n_conv, 6) if n_conv else None,
        "cost_per_1000_conversations": round(1000 * sum(cost.values()) / n_conv, 4) if n_conv else None,
        "tokens_per_conversation": round(sum(tokens.values()) / n_conv, 1) if n_conv else None,
        "latency_ms": {
            handler: {"turns": len(values), "p50": _pct(values, 50), "p95": _pct(values, 95)}
            for handler, values in sorted(latency.items())
        },
        "confusion": confusion(results),
    }


def confusion(results: Sequence[TurnResult]) -> dict[str, dict[str, int]]:
    """``{expected: {actual: turns}}``."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        counts[result.expect.handler][result.handler] += 1
    return {expected: dict(sorted(actual.items())) for expected, actual in sorted(counts.items())}
