"""Per-turn verdicts: each scored turn's expectations against the reply it got and its turn record.

A turn *passes* when every expectation of its ``expect`` holds, except ``intent`` (a diagnostic: a bot that
misreads a follow-up's intent but answers it right still served the user) and ``reference`` (scored, not
pass/fail: answer similarity in :mod:`app.evaluation.metrics`). The handler, cited sources and ticket come
from the turn record (what really ran); ``says``/``not_says``/``buttons`` from the reply the user got.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.evaluation.conversations import Conversation, Expect
from app.evaluation.player import PlayedTurn
from app.orchestration.handlers import ERROR

_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_SPACE = re.compile(r"\s+")
_SOURCES = re.compile(r"\n*Sources?: .*$", re.DOTALL)


def normalise(text: str) -> str:
    """Lower case, every dash a hyphen, whitespace collapsed: how ``says``/``not_says`` compare."""
    return _SPACE.sub(" ", _DASHES.sub("-", text or "").lower()).strip()


def answer_part(text: str) -> str:
    """A reply without its trailing ``Source(s):`` line (what answer similarity compares)."""
    return _SOURCES.sub("", text or "").strip()


@dataclass
class TurnResult:
    """One scored turn: what was expected, what happened, and which expectations failed."""

    conversation: str
    number: int
    sent: str
    expect: Expect
    played: PlayedTurn
    record: Mapping[str, Any] | None
    failures: list[str] = field(default_factory=list)

    @property
    def handler(self) -> str:
        """The handler that really answered (``error`` when nothing was recorded or the request failed)."""
        if self.record is None or self.played.status != 200:
            return ERROR
        return str(self.record["handler"])

    @property
    def intent(self) -> str:
        return str(self.record["intent"]) if self.record is not None else ""

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def reply(self) -> str:
        return self.played.reply_text


def check(expect: Expect, played: PlayedTurn, record: Mapping[str, Any] | None) -> list[str]:
    """The expectations of one turn that do not hold, each as a short sentence."""
    failures: list[str] = []
    if played.status != 200:
        failures.append(f"the request failed ({played.error or played.status})")
    if record is None:
        failures.append("no turn record")
    handler = ERROR if record is None or played.status != 200 else str(record["handler"])
    if handler != expect.handler:
        failures.append(f"handler {handler}, expected {expect.handler}")
    if expect.source and record is not None and not set(expect.source) & set(record.get("sources") or []):
        cited = ", ".join(record.get("sources") or []) or "nothing"
        failures.append(f"cites {cited}, expected {' or '.join(expect.source)}")
    reply = normalise(played.reply_text)
    for text in expect.says:
        if normalise(text) not in reply:
            failures.append(f"does not say {text!r}")
    for text in expect.not_says:
        if normalise(text) in reply:
            failures.append(f"says {text!r}")
    if expect.ticket and (record is None or record.get("ticket_id") is None):
        failures.append("no ticket opened")
    if expect.buttons and not played.buttons:
        failures.append("no buttons offered")
    return failures


def score(
    conversations: Sequence[Conversation],
    played: Mapping[str, Sequence[PlayedTurn]],
    records: Sequence[Mapping[str, Any]],
) -> list[TurnResult]:
    """A :class:`TurnResult` per scored turn; records are matched to turns by correlation id."""
    by_request = {str(r["correlation_id"]): r for r in records if r.get("correlation_id")}
    results = []
    for conversation in conversations:
        steps = {p.number: p for p in played.get(conversation.id, ())}
        for number, turn in conversation.scored_turns:
            step = steps[number]
            record = by_request.get(step.request_id)
            assert turn.expect is not None
            results.append(
                TurnResult(
                    conversation.id,
                    number,
                    step.sent,
                    turn.expect,
                    step,
                    record,
                    check(turn.expect, step, record),
                )
            )
    return results
