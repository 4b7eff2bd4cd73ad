"""Evaluate retrieval and answers against the gold questions (:mod:`knowledge.gold`), per retriever.

Retrieval is scored on *documents*: the retrieved chunks are collapsed into the distinct document ids
in the order of their best chunk, for each retriever (dense, BM25, hybrid): hit@1, hit@k, MRR (within
k), nDCG@10 and recall@k. Answers come from the ``answer`` function the caller gives (the pipeline gives the
bot's own knowledge path, :mod:`app.orchestration.answering`; :func:`extractive_replies` is the knowledge
base alone): unanswerable questions (no ``doc_ids``) are scored on whether it says "I don't know", and the
answerability scores of all questions give the "I don't know" precision/recall curve and its AUC. The
metrics themselves are :mod:`knowledge.metrics`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from knowledge.gold import KINDS, GoldQuestion
from knowledge.metrics import (
    hit_at_k,
    idk_precision_recall,
    mean,
    ndcg_at_k,
    precision_recall_curve,
    recall_at_k,
    reciprocal_rank,
    roc_auc,
)
from knowledge.retrieval import KnowledgeBase
from knowledge.retrievers import RETRIEVERS, ranked_doc_ids

#: Chunks retrieved per distinct document wanted, so that ``max_k`` documents can be ranked.
CHUNKS_PER_DOC = 4


@dataclass(frozen=True)
class Reply:
    """What a gold question got: ``answered`` (not "I don't know"), the answerability ``confidence``, the
    ``text`` the user reads and the ``contexts`` (passages) the answer was built from."""

    answered: bool
    confidence: float
    text: str
    contexts: list[str] = field(default_factory=list)


AnswerFn = Callable[[GoldQuestion], Reply]


def extractive_replies(kb: KnowledgeBase, top_k: int = 3, cut_off: float | None = None) -> AnswerFn:
    """The knowledge base alone: one lookup, the extractive answer or "I don't know" at the cut-off."""

    def answer(question: GoldQuestion) -> Reply:
        found = kb.lookup(question.question, question.tenant, top_k)
        reply = kb.extract(found, cut_off)
        return Reply(reply.answered, reply.confidence, reply.text, [h.text for h in found.hits])

    return answer


@dataclass
class EvaluationResult:
    """Aggregate metrics, one row per question, and the hit@k curve for k = 1..max_k."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    hit_curve: list[dict[str, float]]
    idk_curve: list[dict[str, float | None]] = field(default_factory=list)
    retriever_rows: list[dict[str, Any]] = field(default_factory=list)


def retrieval_scores(ranked: Sequence[str], relevant: Sequence[str], top_k: int) -> dict[str, float]:
    """hit@1, hit@k, MRR within k, nDCG@10 and recall@k of one ranked document list."""
    return {
        "hit_at_1": hit_at_k(ranked, relevant, 1),
        "hit_at_k": hit_at_k(ranked, relevant, top_k),
        "rr": reciprocal_rank(ranked, relevant, top_k),
        "ndcg_at_10": ndcg_at_k(ranked, relevant, 10),
        "recall_at_k": recall_at_k(ranked, relevant, top_k),
    }


def evaluate(
    kb: KnowledgeBase,
    questions: Sequence[GoldQuestion],
    *,
    top_k: int,
    answer: AnswerFn | None = None,
    answer_top_k: int = 3,
    max_k: int = 10,
    retriever: str = "hybrid",
    retrievers: Sequence[str] = RETRIEVERS,
    keep_answers: bool = False,
) -> EvaluationResult:
    """Score ``kb`` on the gold questions.

    Every retriever in ``retrievers`` is scored on the answerable questions (hit@1, hit@top_k, MRR
    within top_k, nDCG@10, recall@top_k: ``metrics["retrievers"]``); the served ``retriever`` also
    gives the top-level figures. "I don't know" precision/recall come from ``answer`` (default: the knowledge
    base alone at its cut-off with ``answer_top_k`` chunks), and its latency is recorded per question
    (``latency_ms_p50``: the whole answer; ``retrieval_ms_p50``: the served retriever alone; both with
    the question embedded afresh).
    ``keep_answers`` keeps each :class:`Reply` in the rows (for ragas).
    """
    answer = answer or extractive_replies(kb, answer_top_k)
    if retriever not in retrievers:
        raise ValueError(f"the served retriever {retriever!r} must be one of the evaluated ones")
    rows: list[dict[str, Any]] = []
    retriever_rows: list[dict[str, Any]] = []
    depth = max(top_k, max_k) * CHUNKS_PER_DOC
    retrieval_ms: list[float] = []
    for question in questions:
        kb.clear_caches()  # retrieval latency includes embedding the question
        started = time.perf_counter()
        kb.retrieve(question.question, question.tenant, answer_top_k, retriever=retriever)
        retrieval_ms.append((time.perf_counter() - started) * 1000)
        rankings = {
            name: ranked_doc_ids(kb.retrieve(question.question, question.tenant, depth, retriever=name))
            for name in retrievers
        }
        kb.clear_caches()  # the latency includes embedding the question, as for a new question in production
        started = time.perf_counter()
        reply = answer(question)
        latency_ms = (time.perf_counter() - started) * 1000
        row = _row(question, rankings[retriever], reply.answered, reply.confidence, latency_ms, top_k, max_k)
        if keep_answers:
            row["_answer"] = reply
        rows.append(row)
        if question.answerable:
            for name, ranked in rankings.items():
                scores = retrieval_scores(ranked, question.doc_ids, top_k)
                retriever_rows.append({"retriever": name, "id": question.id, "kind": question.kind, **scores})
    answerable = [row for row in rows if row["answerable"]]
    confidences = [row["confidence"] for row in rows]
    labels = [row["answerable"] for row in rows]
    metrics: dict[str, Any] = {
        **_summary(rows, top_k),
        "answerable": len(answerable),
        "unanswerable": len(rows) - len(answerable),
        "top_k": top_k,
        "cut_off": kb.cut_off,
        "tenant_cut_offs": kb.tenant_cut_offs,
        "retriever": retriever,
        "latency_ms_p50": round(statistics.median(row["latency_ms"] for row in rows), 2) if rows else None,
        "retrieval_ms_p50": round(statistics.median(retrieval_ms), 2) if retrieval_ms else None,
        "retrievers": {name: _retriever_summary(retriever_rows, name, top_k) for name in retrievers},
        "answerability": {"auc": roc_auc(confidences, labels), "model": kb.answerability.kind},
        "by_kind": {
            kind: _kind_summary(rows, kind, top_k)
            for kind in KINDS
            if any(row["kind"] == kind for row in rows)
        },
    }
    curve = [
        {
            "k": k,
            "hit_rate": _rounded(mean(hit_at_k(row["ranked"], row["relevant"], k) for row in answerable)),
        }
        for k in range(1, max_k + 1)
    ]
    cut_offs = sorted({0.0, 1.0, *(round(i / 50, 2) for i in range(51)), *confidences})
    idk_curve = precision_recall_curve(confidences, labels, cut_offs) if not all(labels) else []
    public = [_public(row) for row in rows]
    if keep_answers:
        for row, source in zip(public, rows, strict=True):
            row["_answer"] = source["_answer"]
    return EvaluationResult(
        metrics=metrics, rows=public, hit_curve=curve, idk_curve=idk_curve, retriever_rows=retriever_rows
    )


def _retriever_summary(rows: Sequence[dict[str, Any]], name: str, top_k: int) -> dict[str, Any]:
    mine = [row for row in rows if row["retriever"] == name]
    return {
        "hit_at_1": _rounded(mean(row["hit_at_1"] for row in mine)),
        f"hit_at_{top_k}": _rounded(mean(row["hit_at_k"] for row in mine)),
        "mrr": _rounded(mean(row["rr"] for row in mine)),
        "ndcg_at_10": _rounded(mean(row["ndcg_at_10"] for row in mine)),
        f"recall_at_{top_k}": _rounded(mean(row["recall_at_k"] for row in mine)),
    }


def _row(
    question: GoldQuestion,
    ranked: list[str],
    answered: bool,
    confidence: float,
    latency_ms: float,
    top_k: int,
    max_k: int,
) -> dict[str, Any]:
    relevant = list(question.doc_ids)
    keys = ("hit_at_1", "hit_at_k", "rr", "ndcg_at_10", "recall_at_k")
    scores = retrieval_scores(ranked, relevant, top_k) if question.answerable else dict.fromkeys(keys)
    return {
        "id": question.id,
        "kind": question.kind,
        "tenant": question.tenant,
        "question": question.question,
        "answerable": question.answerable,
        "relevant": relevant,
        "ranked": ranked[:max_k],
        **scores,
        "confidence": round(confidence, 4),
        "answered": answered,
        "latency_ms": round(latency_ms, 2),
    }


def _summary(rows: Sequence[dict[str, Any]], top_k: int) -> dict[str, Any]:
    answerable = [row for row in rows if row["answerable"]]
    precision, recall = idk_precision_recall(
        [not row["answered"] for row in rows], [not row["answerable"] for row in rows]
    )
    return {
        "questions": len(rows),
        "hit_at_1": _rounded(mean(row["hit_at_1"] for row in answerable)),
        f"hit_at_{top_k}": _rounded(mean(row["hit_at_k"] for row in answerable)),
        "mrr": _rounded(mean(row["rr"] for row in answerable)),
        "ndcg_at_10": _rounded(mean(row["ndcg_at_10"] for row in answerable)),
        f"recall_at_{top_k}": _rounded(mean(row["recall_at_k"] for row in answerable)),
        "idk_precision": _rounded(precision),
        "idk_recall": _rounded(recall),
        "false_idk_rate": _rounded(mean(float(not row["answered"]) for row in answerable)),
    }


def _kind_summary(rows: Sequence[dict[str, Any]], kind: str, top_k: int) -> dict[str, Any]:
    """The metrics that mean something for one kind: retrieval for answerable kinds, abstention otherwise."""
    summary = _summary([row for row in rows if row["kind"] == kind], top_k)
    if kind == "unanswerable":
        return {"questions": summary["questions"], "idk_recall": summary["idk_recall"]}
    return {key: value for key, value in summary.items() if key not in ("idk_precision", "idk_recall")}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A per-question row flattened for CSV: document lists joined with ';'."""
    flat = {key: value for key, value in row.items() if not key.startswith("_")}
    return {**flat, "relevant": ";".join(row["relevant"]), "ranked": ";".join(row["ranked"])}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
