"""Knowledge gaps found by data: the answerable turns of a bot-level evaluation that failed, and why.

A turn expected to be answered from the articles (``expect.handler: knowledge``) fails when the bot said it
does not know, another handler answered, it cited another article, or the reply left out a fact it should say
(``says``). :func:`find_gaps` replays each such turn against the index with the question the bot's retrieval read
(the turn record's ``question``: the message, or for a follow-up the conversation's topic and the message; the
message alone when the knowledge action did not run) and records what was retrieved, the answerability
confidence against the cut-off, where the expected articles rank, and, for each missing fact, which article
says it, if any. The first cause that holds names the gap (:data:`CAUSES`, in this order):

- ``not in the articles``: a fact the reply should say is in none of the expected articles (in no article of
  the tenant when the turn names none): the content is missing;
- ``routed elsewhere``: another handler (fallback, handoff, chitchat...) answered: the knowledge path never ran;
- ``article not retrieved``: none of the expected articles is among the retrieved chunks;
- ``below the cut-off``: retrieved, but not confidently enough: "I don't know";
- ``other passage quoted``: the expected article was retrieved and answers, but the reply quoted another passage
  (or another article).

:func:`gaps_markdown` writes them grouped by cause (``nlu/results/bot/gaps.md``): the articles to extend are
under the first heading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.evaluation.checks import TurnResult, normalise
from app.orchestration.handlers import IDK, KNOWLEDGE

CAUSES = (
    "not in the articles",
    "routed elsewhere",
    "article not retrieved",
    "below the cut-off",
    "other passage quoted",
)
_ABOUT = {
    CAUSES[0]: "Facts the reply should give that the expected articles do not state: the articles to extend.",
    CAUSES[1]: "Another handler answered; the knowledge base would have been asked this (retrieval shown).",
    CAUSES[2]: "None of the expected articles is among the retrieved chunks.",
    CAUSES[3]: 'The expected article was retrieved, but under the "I don\'t know" cut-off.',
    CAUSES[4]: "The expected article was retrieved above the cut-off; the reply quoted another passage.",
}


@dataclass
class Gap:
    """One failed answerable turn, replayed: what the index returns for it and the cause."""

    conversation: str
    number: int
    tenant: str
    text: str
    read: str  # the question retrieval read (the record's), which the replay looks up
    handler: str
    failures: list[str]
    expected: tuple[str, ...]
    cited: list[str]
    confidence: float | None
    cut_off: float
    retrieved: list[tuple[str, str, float]]  # (doc id, section, score), best first
    expected_rank: int | None  # rank (from 1) of the first retrieved chunk of an expected article
    facts: dict[str, list[str]] = field(default_factory=dict)  # missing fact -> "doc › section"s stating it
    cause: str = ""


def find_gaps(
    results: Sequence[TurnResult], tenants: Mapping[str, str], kb: Any, *, top_k: int = 3
) -> list[Gap]:
    """The failed answerable turns of ``results`` replayed against ``kb`` (a loaded ``KnowledgeBase``);
    ``tenants`` maps conversation ids to their tenant."""
    said = _said(kb)
    gaps = []
    for result in results:
        if result.expect.handler != KNOWLEDGE or result.passed:
            continue
        tenant = tenants[result.conversation]
        read = str((result.record or {}).get("question") or "") or result.sent
        found = kb.lookup(read, tenant, top_k)
        retrieved = [(hit.doc_id, hit.section, round(float(hit.score), 3)) for hit in found.hits]
        expected = tuple(result.expect.source)
        ranks = [i for i, (doc_id, _, _) in enumerate(retrieved, 1) if doc_id in expected]
        reply = normalise(result.reply)
        facts = {
            fact: [where for where, text in said.get(tenant, []) if normalise(fact) in text]
            for fact in result.expect.says
            if normalise(fact) not in reply
        }
        gap = Gap(
            conversation=result.conversation,
            number=result.number,
            tenant=tenant,
            text=result.sent,
            read=read,
            handler=result.handler,
            failures=list(result.failures),
            expected=expected,
            cited=list((result.record or {}).get("sources") or []),
            confidence=None if found.refused else round(float(found.confidence), 3),
            cut_off=round(float(kb.cut_off_for(tenant)), 4),
            retrieved=retrieved,
            expected_rank=ranks[0] if ranks else None,
            facts=facts,
        )
        gap.cause = cause(gap)
        gaps.append(gap)
    return gaps


def cause(gap: Gap) -> str:
    """The first of :data:`CAUSES` that holds for ``gap``."""
    if any(not _in_expected(gap, where) for where in gap.facts.values()):
        return CAUSES[0]
    if gap.handler not in (KNOWLEDGE, IDK):
        return CAUSES[1]
    if gap.expected and gap.expected_rank is None:
        return CAUSES[2]
    if gap.confidence is None or gap.confidence < gap.cut_off:
        return CAUSES[3]
    return CAUSES[4]


def gaps_markdown(gaps: Sequence[Gap], header: str) -> str:
    """The report: a count per cause, then every gap under its cause with what was retrieved."""
    lines = [
        header,
        "",
        f"{len(gaps)} answerable turns failed. Each is replayed against the index with the question the bot's "
        "retrieval read (the message, or for a follow-up the conversation's topic and the message, shown as "
        "'read as'): what was retrieved, the answerability confidence against the cut-off, where "
        "the expected article ranks, and which article states each fact the reply left out.",
        "",
        "| cause | turns |",
        "| --- | ---: |",
        *(f"| {name} | {sum(g.cause == name for g in gaps)} |" for name in CAUSES),
    ]
    for name in CAUSES:
        mine = [gap for gap in gaps if gap.cause == name]
        if not mine:
            continue
        lines += ["", f"## {name[0].upper()}{name[1:]} ({len(mine)})", "", _ABOUT[name], ""]
        for gap in mine:
            lines += _gap_lines(gap)
    return "\n".join(lines) + "\n"


def _gap_lines(gap: Gap) -> list[str]:
    retrieved = ", ".join(
        f"{doc} › {section or '(intro)'} ({score})" for doc, section, score in gap.retrieved
    )
    rank = f"rank {gap.expected_rank}" if gap.expected_rank else "not retrieved"
    confidence = "refused" if gap.confidence is None else f"{gap.confidence}"
    lines = [
        f"- **{gap.conversation} #{gap.number}** ({gap.tenant}, answered by {gap.handler}): {gap.text}",
        *([f"  - read as: {gap.read}"] if gap.read != gap.text else []),
        f"  - expected: {' or '.join(gap.expected) or '(any article)'} ({rank}); cited: "
        f"{', '.join(gap.cited) or 'nothing'}",
        f"  - retrieved (confidence {confidence}, cut-off {gap.cut_off}): {retrieved or 'nothing'}",
    ]
    for fact, where in gap.facts.items():
        expected = _in_expected(gap, where)
        others = [place for place in where if place not in expected]
        said = f"in {', '.join(expected)}" if expected else "not in the expected article"
        if not expected and others:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            said += f" (but in {shown})"
        elif not where:
            said = "in no article"
        lines.append(f"  - should say {fact!r}: {said}")
    return lines


def _in_expected(gap: Gap, where: Sequence[str]) -> list[str]:
    """The places of ``where`` ("doc › section") in the gap's expected articles (all when it names none)."""
    return [place for place in where if not gap.expected or place.split(" › ")[0] in gap.expected]


def _said(kb: Any) -> dict[str, list[tuple[str, str]]]:
    """Per tenant, ``("doc › section", normalised text)`` of every chunk: where a fact is stated."""
    said: dict[str, list[tuple[str, str]]] = {}
    for chunk in kb.chunks:
        where = f"{chunk.doc_id} › {chunk.section or '(intro)'}"
        said.setdefault(chunk.tenant, []).append((where, normalise(chunk.text.replace("**", ""))))
    return said
