"""Failure analysis of the retrieval evaluation (``evaluate_rag``'s ``per_question.csv``): what happened to each
gold question, and which articles are missing or weak. For ``notebooks/03_knowledge_failures.ipynb``.

The rows are :func:`knowledge.evaluation.evaluate`'s, read back with :func:`read_per_question`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowledge.metrics import mean

#: What happened to a gold question, first match wins: the bot's answer against the gold documents.
OUTCOMES = ("answered right", "unanswered", "wrong article", "answered unanswerable", "refused unanswerable")


def read_per_question(path: Path) -> list[dict[str, Any]]:
    """``per_question.csv`` (as ``knowledge.evaluation`` wrote it) back to rows: document lists as lists, flags as
    bools, scores as floats (None where the question had none)."""
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    rows = []
    for row in frame.to_dict("records"):
        rows.append({
            **row,
            "answerable": row["answerable"] == "True",
            "answered": row["answered"] == "True",
            "relevant": [d for d in row["relevant"].split(";") if d],
            "ranked": [d for d in row["ranked"].split(";") if d],
            **{k: float(row[k]) if row.get(k) else None for k in ("hit_at_1", "rr", "confidence")},
        })  # fmt: skip
    return rows


def outcome(row: dict[str, Any]) -> str:
    """One of :data:`OUTCOMES` for a per-question row: an answerable question answered while the top
    retrieved article is not a gold one is a ``wrong article``; not answered, ``unanswered`` (a false
    "I don't know")."""
    if not row["answerable"]:
        return OUTCOMES[3] if row["answered"] else OUTCOMES[4]
    if not row["answered"]:
        return OUTCOMES[1]
    return OUTCOMES[0] if row["ranked"][:1] and row["ranked"][0] in row["relevant"] else OUTCOMES[2]


def article_report(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per gold article of the answerable questions: ``questions``, ``answered_right`` share, ``unanswered``
    and ``wrong_article`` counts, ``mrr`` and ``taken_by`` (the articles ranked first instead, with counts);
    weakest first (lowest share answered right, then most questions)."""
    by_doc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["answerable"]:
            for doc in row["relevant"]:
                by_doc[doc].append(row)
    report = []
    for doc, mine in by_doc.items():
        outcomes = Counter(outcome(r) for r in mine)
        taken = Counter(r["ranked"][0] for r in mine if r["ranked"] and r["ranked"][0] not in r["relevant"])
        report.append({
            "article": doc,
            "questions": len(mine),
            "answered_right": round(outcomes[OUTCOMES[0]] / len(mine), 4),
            "unanswered": outcomes[OUTCOMES[1]],
            "wrong_article": outcomes[OUTCOMES[2]],
            "mrr": round(mean(r["rr"] or 0.0 for r in mine) or 0.0, 4),
            "taken_by": ", ".join(f"{d} ({n})" for d, n in taken.most_common()),
        })  # fmt: skip
    return sorted(report, key=lambda r: (r["answered_right"], -r["questions"], r["article"]))
