"""Evaluate retrieval and answers against a gold question set, per retriever, plus "I don't know" quality.

The gold file (``knowledge/eval/gold.yml``)::

    questions:
      - id: q-refund-window
        question: How long do I have to ask for a refund?
        answer: Within 30 days of the invoice.
        doc_ids: [acme-refunds]
        kind: direct            # direct | paraphrase | multi_doc | unanswerable
        tenant: acme            # optional, defaults to the base tenant

Retrieval is scored on *documents*: the retrieved chunks are collapsed into the distinct document ids
in the order of their best chunk, for each retriever (dense, BM25, hybrid): hit@1, hit@k, MRR (within
k), nDCG@10 and recall@k. Unanswerable questions (no ``doc_ids``) are scored on whether the bot abstains,
i.e. answers "I don't know" at the serving cut-off ``min_score`` with the served retriever, and the
answerability scores of all questions give the "I don't know" precision/recall curve and its AUC.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowledge.confidence import precision_recall_curve, roc_auc
from knowledge.retrieval import Hit, KnowledgeBase
from knowledge.retrievers import RETRIEVERS

KINDS = ("direct", "paraphrase", "multi_doc", "unanswerable")
#: Chunks retrieved per distinct document wanted, so that ``max_k`` documents can be ranked.
CHUNKS_PER_DOC = 4


class GoldSetError(ValueError):
    """The gold file is missing or malformed, or refers to documents the index does not hold."""


@dataclass(frozen=True)
class GoldQuestion:
    """One gold question and the documents that answer it (none for an unanswerable one)."""

    id: str
    question: str
    answer: str
    doc_ids: tuple[str, ...]
    kind: str
    tenant: str

    @property
    def answerable(self) -> bool:
        """True when some document answers the question."""
        return bool(self.doc_ids)


@dataclass
class EvaluationResult:
    """Aggregate metrics, one row per question, and the hit@k curve for k = 1..max_k."""

    metrics: dict[str, Any]
    rows: list[dict[str, Any]]
    hit_curve: list[dict[str, float]]
    idk_curve: list[dict[str, float | None]] = field(default_factory=list)
    retriever_rows: list[dict[str, Any]] = field(default_factory=list)


# --- pure metrics over ranked document-id lists -------------------------------------------------


def ranked_doc_ids(hits: Iterable[Hit]) -> list[str]:
    """Distinct document ids of ranked chunks, each at the position of its best chunk."""
    return list(dict.fromkeys(hit.doc_id for hit in hits))


def hit_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """1.0 if any relevant document is among the first ``k`` ranked, else 0.0."""
    return 1.0 if set(ranked[:k]) & set(relevant) else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str], k: int | None = None) -> float:
    """1 / rank of the first relevant document within the first ``k`` (all if None); 0.0 if none."""
    wanted = set(relevant)
    for rank, doc_id in enumerate(ranked[:k], start=1):
        if doc_id in wanted:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant documents found among the first ``k`` ranked (0.0 when none are relevant)."""
    wanted = set(relevant)
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    """Normalised discounted cumulative gain with binary relevance over the first ``k`` ranked."""
    wanted = set(relevant)
    dcg = sum(
        1.0 / math.log2(rank + 1) for rank, doc_id in enumerate(ranked[:k], start=1) if doc_id in wanted
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(wanted), k) + 1))
    return dcg / ideal if ideal > 0 else 0.0


def idk_precision_recall(
    abstained: Sequence[bool], unanswerable: Sequence[bool]
) -> tuple[float | None, float | None]:
    """Precision and recall of "I don't know", treating abstention on unanswerable questions as a hit.

    Precision: of the questions the bot abstained on, the share that were unanswerable. Recall: of the
    unanswerable questions, the share the bot abstained on. Undefined (no denominator) -> None.
    """
    if len(abstained) != len(unanswerable):
        raise ValueError("abstained and unanswerable must have the same length")
    both = sum(a and u for a, u in zip(abstained, unanswerable, strict=True))
    precision = both / sum(abstained) if any(abstained) else None
    recall = both / sum(unanswerable) if any(unanswerable) else None
    return precision, recall


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean, or None for no values."""
    values = list(values)
    return sum(values) / len(values) if values else None


# --- gold set ------------------------------------------------------------------------------------


def load_gold(path: Path | str, default_tenant: str = "acme") -> list[GoldQuestion]:
    """Read and validate the gold file; every problem raises :class:`GoldSetError` with one clear line."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GoldSetError(f"gold file not found: {path}") from exc
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise GoldSetError(f"gold file {path} is not valid YAML: {detail}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldSetError(f"cannot read gold file {path}: {exc}") from exc
    entries = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise GoldSetError(f"gold file {path}: expected a non-empty 'questions:' list")
    questions = [
        _gold_question(entry, position, path, default_tenant) for position, entry in enumerate(entries, 1)
    ]
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise GoldSetError(f"gold file {path}: duplicate question id {question.id!r}")
        seen.add(question.id)
    return questions


def check_gold_against_index(questions: Sequence[GoldQuestion], manifest: dict[str, Any]) -> None:
    """Every gold doc id must exist in the index and belong to the question's tenant."""
    tenant_of = {doc["doc_id"]: doc["tenant"] for doc in manifest.get("documents", [])}
    for question in questions:
        for doc_id in question.doc_ids:
            if doc_id not in tenant_of:
                raise GoldSetError(f"gold question {question.id!r} names unknown doc id {doc_id!r}")
            if tenant_of[doc_id] != question.tenant:
                raise GoldSetError(
                    f"gold question {question.id!r} (tenant {question.tenant!r}) names doc id "
                    f"{doc_id!r} of tenant {tenant_of[doc_id]!r}"
                )


def _gold_question(entry: Any, position: int, path: Path | str, default_tenant: str) -> GoldQuestion:
    where = f"gold file {path}, question #{position}"
    if not isinstance(entry, dict):
        raise GoldSetError(f"{where}: expected a mapping")
    missing = [key for key in ("id", "question", "kind") if not entry.get(key)]
    if missing:
        raise GoldSetError(f"{where}: missing {', '.join(missing)}")
    kind = str(entry["kind"])
    if kind not in KINDS:
        raise GoldSetError(f"{where}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    doc_ids = entry.get("doc_ids") or []
    if not isinstance(doc_ids, list) or not all(isinstance(doc_id, str) for doc_id in doc_ids):
        raise GoldSetError(f"{where}: doc_ids must be a list of document ids")
    if (kind == "unanswerable") != (not doc_ids):
        raise GoldSetError(f"{where}: unanswerable questions, and only they, have no doc_ids")
    return GoldQuestion(
        id=str(entry["id"]),
        question=str(entry["question"]),
        answer=str(entry.get("answer") or ""),
        doc_ids=tuple(doc_ids),
        kind=kind,
        tenant=str(entry.get("tenant") or default_tenant),
    )


# --- running the evaluation ----------------------------------------------------------------------


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
    min_score: float,
    answer_top_k: int = 3,
    max_k: int = 10,
    retriever: str = "hybrid",
    retrievers: Sequence[str] = RETRIEVERS,
    answerer: str = "extractive",
    keep_answers: bool = False,
) -> EvaluationResult:
    """Score ``kb`` on the gold questions.

    Every retriever in ``retrievers`` is scored on the answerable questions (hit@1, hit@top_k, MRR
    within top_k, nDCG@10, recall@top_k: ``metrics["retrievers"]``); the served ``retriever`` also
    gives the top-level figures. "I don't know" precision/recall use ``kb.answer`` at ``min_score`` with
    ``answer_top_k`` chunks, exactly as the bot serves it, and its latency is recorded per question
    (``latency_ms_p50``: the whole answer; ``retrieval_ms_p50``: the served retriever alone; both with
    the question embedded afresh).
    ``keep_answers`` keeps each reply's text and sources in the rows (for ragas).
    """
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
        reply = kb.answer(
            question.question,
            question.tenant,
            top_k=answer_top_k,
            min_score=min_score,
            retriever=retriever,
            answerer=answerer,
        )
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
        "min_score": min_score,
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
