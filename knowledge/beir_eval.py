"""Score the retrievers on a BEIR-format set: index the corpus like the knowledge base, search, rank documents.

The corpus is indexed with the same code as the knowledge base (``build_index``: sentence-aware chunks,
MiniLM embeddings, embedded vector store) and searched with the same dense, BM25 and hybrid retrievers;
chunk rankings are collapsed to documents. Scores (:mod:`knowledge.metrics`, with the qrels' graded
gains): nDCG@10, recall@100, MRR@10, and query latency p50 (retrieval only, query embedding included).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_index.core import Document

from knowledge.beir_format import BeirDataset
from knowledge.documents import EMBED_EXCLUDED_KEYS, LLM_EXCLUDED_KEYS
from knowledge.index import BuildReport, build_index
from knowledge.metrics import ndcg_at_k, recall_at_k, reciprocal_rank
from knowledge.retrieval import KnowledgeBase
from knowledge.retrievers import RETRIEVERS, ranked_doc_ids

K_VALUES = (10, 100)


@dataclass
class BeirRun:
    """Per-retriever scores of one dataset, plus the index build time."""

    dataset: str
    documents: int
    queries: int
    chunks: int
    build_seconds: float
    scores: dict[str, dict[str, float]]


def build_kb(
    dataset: BeirDataset,
    index_dir: Path,
    embed_model: Any,
    *,
    chunk_size: int = 256,
    chunk_overlap: int = 32,
    fusion: str = "relative",
    dense_weight: float = 0.8,
    cache: bool = False,
    show_progress: bool = False,
) -> tuple[KnowledgeBase, BuildReport]:
    """Index the corpus like the knowledge base and open it; returns ``(KnowledgeBase, BuildReport)``."""
    documents = [
        Document(
            text=doc["text"] if doc["text"].strip() else doc["title"] or "(empty)",
            id_=doc_id,
            metadata={"doc_id": doc_id, "title": doc["title"] or doc_id, "tenant": doc["tenant"], "path": ""},
            excluded_embed_metadata_keys=list(EMBED_EXCLUDED_KEYS),
            excluded_llm_metadata_keys=list(LLM_EXCLUDED_KEYS),
        )
        for doc_id, doc in dataset.corpus.items()
    ]
    report = build_index(
        documents,
        index_dir,
        chunk_size,
        chunk_overlap,
        embed_model,
        show_progress=show_progress,
        cache_path=True if cache else None,
    )
    kb = KnowledgeBase.load(index_dir, embed_model, fusion=fusion, dense_weight=dense_weight)
    return kb, report


def score_kb(
    kb: KnowledgeBase,
    dataset: BeirDataset,
    retrievers: Sequence[str] = RETRIEVERS,
    k_values: Sequence[int] = K_VALUES,
    show_progress: bool = False,
) -> dict[str, dict[str, float]]:
    """nDCG@10, recall@100, MRR@10 and latency p50 of each retriever over the judged queries."""
    from tqdm.auto import tqdm

    depth = max(k_values)
    chunk_depth = depth * 3
    scores: dict[str, dict[str, float]] = {}
    for name in retrievers:
        ndcgs, recalls, mrrs, latencies = [], [], [], []
        for query_id in tqdm(dataset.judged_queries, desc=name, unit="query", disable=not show_progress):
            query = dataset.queries[query_id]
            kb.clear_caches()
            started = time.perf_counter()
            hits = kb.retrieve(query["text"], query["tenant"], chunk_depth, retriever=name)
            latencies.append((time.perf_counter() - started) * 1000)
            ranked = ranked_doc_ids(hits)[:depth]
            gains = dataset.qrels[query_id]
            ndcgs.append(ndcg_at_k(ranked, gains, 10))
            recalls.append(recall_at_k(ranked, gains, 100))
            mrrs.append(reciprocal_rank(ranked, gains, 10))
        scores[name] = {
            "ndcg_at_10": round(statistics.fmean(ndcgs), 4),
            "recall_at_100": round(statistics.fmean(recalls), 4),
            "mrr_at_10": round(statistics.fmean(mrrs), 4),
            "latency_ms_p50": round(statistics.median(latencies), 2),
        }
    return scores


def evaluate_dataset(
    dataset: BeirDataset,
    embed_model: Any,
    *,
    retrievers: Sequence[str] = RETRIEVERS,
    work_dir: Path | None = None,
    show_progress: bool = False,
    **build: Any,
) -> BeirRun:
    """Build an index of ``dataset`` (in ``work_dir`` or a temporary folder) and score every retriever."""
    with tempfile.TemporaryDirectory(prefix="beir-") as tmp:
        index_dir = Path(work_dir or tmp) / f"{dataset.name}-index"
        kb, report = build_kb(dataset, index_dir, embed_model, show_progress=show_progress, **build)
        try:
            scores = score_kb(kb, dataset, retrievers, show_progress=show_progress)
        finally:
            kb.close()
    return BeirRun(
        dataset.name,
        len(dataset.corpus),
        len(dataset.judged_queries),
        report.chunks,
        round(report.seconds, 2),
        scores,
    )
