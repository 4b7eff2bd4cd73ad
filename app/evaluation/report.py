"""Files people read after a bot-level evaluation: per-turn CSV, the turn records with their LLM calls (JSON),
the handler confusion (CSV for DVC plots and a PNG that opens offline), and the failing conversations with
their transcripts (Markdown)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.evaluation.checks import TurnResult
from app.evaluation.conversations import Conversation
from app.evaluation.player import PlayedTurn
from app.orchestration.handlers import PRECEDENCE

TURN_COLUMNS = (
    "conversation", "turn", "sent", "expected_handler", "handler", "expected_intent", "intent", "passed",
    "failures", "rule", "tier_used", "cache", "sources", "latency_ms", "reply",
)  # fmt: skip


def write_turns(path: Path, results: Sequence[TurnResult]) -> None:
    """One row per scored turn (``expected_handler``/``handler`` are the DVC confusion plot's axes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=TURN_COLUMNS)
        writer.writeheader()
        for r in results:
            record = r.record or {}
            writer.writerow({
                "conversation": r.conversation, "turn": r.number, "sent": r.sent,
                "expected_handler": r.expect.handler, "handler": r.handler,
                "expected_intent": r.expect.intent or "", "intent": r.intent, "passed": int(r.passed),
                "failures": "; ".join(r.failures), "rule": record.get("rule", ""),
                "tier_used": "" if record.get("tier_used") is None else record["tier_used"],
                "cache": record.get("cache", ""), "sources": " ".join(record.get("sources") or []),
                "latency_ms": r.played.elapsed_ms, "reply": r.reply.replace("\n", " ")[:500],
            })  # fmt: skip


def write_records(
    path: Path, records: Sequence[Mapping[str, Any]], calls: Mapping[int, Mapping[str, Any]]
) -> None:
    """The run's turn records (every user turn, scored or not, as the Analytics page reads them) and the LLM
    calls they name (:data:`app.analytics.kpis.CALL_COLUMNS`), as one JSON file: what the conversation
    analytics notebook computes its figures from (:func:`read_records`)."""
    from app.analytics.kpis import CALL_COLUMNS

    kept = [{c: call.get(c) for c in CALL_COLUMNS if c != "tokens"} for _, call in sorted(calls.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"records": list(records), "llm_calls": kept}, indent=1, default=str) + "\n")


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(records, llm_calls)`` of a file :func:`write_records` wrote, for :mod:`app.analytics.kpis`."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["records"], data["llm_calls"]


def plot_confusion(path: Path, confusion: Mapping[str, Mapping[str, int]], title: str) -> None:
    """Expected (rows) against actual (columns) handler, counts in the cells, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    present = {h for row in confusion.values() for h in row} | set(confusion)
    labels = [h for h in PRECEDENCE if h in present]
    matrix = np.array([[confusion.get(e, {}).get(a, 0) for a in labels] for e in labels])
    fig, ax = plt.subplots(figsize=(1.1 * len(labels) + 2, 1.0 * len(labels) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("actual handler (turn records)")
    ax.set_ylabel("expected handler")
    ax.set_title(title)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > matrix.max() / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=color)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def failing_conversations(
    conversations: Sequence[Conversation],
    played: Mapping[str, Sequence[PlayedTurn]],
    results: Sequence[TurnResult],
    header: str,
) -> str:
    """Markdown: each conversation with a failed turn, its transcript and what failed where."""
    failed: dict[tuple[str, int], TurnResult] = {
        (r.conversation, r.number): r for r in results if not r.passed
    }
    by_id = {c.id: c for c in conversations}
    lines = [header, ""]
    failing = [c for c in conversations if any(k[0] == c.id for k in failed)]
    lines.append(f"{len(failing)} of {len(conversations)} conversations have a failing turn.")
    for conversation in failing:
        lines += ["", f"## {conversation.id} ({conversation.tenant}:{conversation.user})", ""]
        if by_id[conversation.id].description:
            lines += [f"_{by_id[conversation.id].description}_", ""]
        for step in played.get(conversation.id, ()):
            if step.kind in ("agent", "hand_back"):
                lines.append(f"- *agent* {step.kind}{': ' + step.error if step.error else ''}")
                continue
            lines.append(f"- **user** ({step.kind}): {step.sent}")
            reply = (
                step.reply_text.replace("\n", " / ") or f"(no reply{': ' + step.error if step.error else ''})"
            )
            lines.append(f"  - **bot**: {reply}")
            result = failed.get((conversation.id, step.number))
            if result is not None:
                record = result.record or {}
                lines.append(
                    f"  - FAILED ({result.handler}, rule {record.get('rule') or '-'}): "
                    + "; ".join(result.failures)
                )
    return "\n".join(lines) + "\n"


def summary_table(metrics: Mapping[str, Any]) -> str:
    """The headline figures as a Markdown table (README, closing notes)."""
    rows = [
        ("conversations / scored turns", f"{metrics['conversations']} / {metrics['turns']}"),
        ("task completion", metrics["task_completion"]),
        ("correct containment", metrics["correct_containment"]),
        ("containment / escalation", f"{metrics['containment']} / {metrics['escalation_rate']}"),
        ("handler accuracy", metrics["handler_accuracy"]),
        ("intent accuracy", metrics["intent_accuracy"]),
        ("idk on unanswerable / wrong answers there", f"{metrics['idk_on_unanswerable']} / "
                                                      f"{metrics['wrong_answer_on_unanswerable']}"),
        ("false idk on answerable", metrics["false_idk_on_answerable"]),
        ("cost per 1000 conversations", metrics["cost_per_1000_conversations"]),
    ]  # fmt: skip
    return "\n".join(["| figure | value |", "| --- | ---: |", *(f"| {k} | {v} |" for k, v in rows)]) + "\n"
