"""BEIR-format retrieval evaluation: any ``corpus.jsonl`` + ``queries.jsonl`` + ``qrels/test.tsv``.

The format (https://github.com/beir-cellar/beir, as the public BEIR sets ship it):

- ``corpus.jsonl``: one JSON object per line, ``{"_id": "...", "title": "...", "text": "..."}``;
- ``queries.jsonl``: ``{"_id": "...", "text": "..."}``;
- ``qrels/test.tsv``: a header line ``query-id<TAB>corpus-id<TAB>score``, then one judgement per line
  (score > 0 is relevant; graded scores are nDCG gains).

An optional ``"metadata": {"tenant": "..."}`` on corpus and query lines is honoured: a query then only
searches its tenant's documents (our exported gold set uses it; public sets have no tenants).

The corpus is indexed with the same code as the knowledge base (``build_index``: sentence-aware chunks,
MiniLM embeddings, embedded vector store) and searched with the same dense, BM25 and hybrid retrievers;
chunk rankings are collapsed to documents. Scores: nDCG@10, recall@100, MRR@10, and query latency p50
(retrieval only, query embedding included).

    python -m knowledge.beir evaluate --corpus D/corpus.jsonl --queries D/queries.jsonl --qrels D/qrels/test.tsv
    python -m knowledge.beir export --gold knowledge/eval/gold.yml --sources knowledge/sources.yml --out DIR

Malformed files make the command exit 2 with one line naming the file, line and problem.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.retrievers import RETRIEVERS

DEFAULT_TENANT = "default"
K_VALUES = (10, 100)


class BeirFormatError(ValueError):
    """A BEIR file is missing or malformed; the message is one line naming the file and the problem."""


@dataclass
class BeirDataset:
    """A loaded BEIR set: documents, queries, and graded relevance judgements."""

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, dict[str, str]]
    qrels: dict[str, dict[str, int]]
    judged_queries: list[str] = field(default_factory=list)

    @property
    def tenants(self) -> set[str]:
        return {doc["tenant"] for doc in self.corpus.values()}


# --- reading ---------------------------------------------------------------------------------------


def _jsonl(path: Path, kind: str) -> Iterable[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BeirFormatError(f"{kind} file not found: {path}") from exc
    except OSError as exc:
        raise BeirFormatError(f"cannot read {kind} file {path}: {exc.strerror or exc}") from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BeirFormatError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise BeirFormatError(f"{path}:{number}: expected a JSON object")
                yield number, record
        except UnicodeDecodeError as exc:
            raise BeirFormatError(f"{path}: not UTF-8 text") from exc


def _tenant(record: dict[str, Any]) -> str:
    metadata = record.get("metadata")
    tenant = metadata.get("tenant") if isinstance(metadata, dict) else None
    return str(tenant) if tenant else DEFAULT_TENANT


def load_corpus(path: Path) -> dict[str, dict[str, str]]:
    """``{doc id: {"title", "text", "tenant"}}`` from ``corpus.jsonl``."""
    corpus: dict[str, dict[str, str]] = {}
    for number, record in _jsonl(path, "corpus"):
        doc_id, text = record.get("_id"), record.get("text")
        if not isinstance(doc_id, str | int) or str(doc_id) == "":
            raise BeirFormatError(f"{path}:{number}: missing '_id'")
        if not isinstance(text, str):
            raise BeirFormatError(f"{path}:{number}: missing 'text'")
        if str(doc_id) in corpus:
            raise BeirFormatError(f"{path}:{number}: duplicate _id {doc_id!r}")
        corpus[str(doc_id)] = {
            "title": str(record.get("title") or ""),
            "text": text,
            "tenant": _tenant(record),
        }
    if not corpus:
        raise BeirFormatError(f"{path}: the corpus is empty")
    return corpus


def load_queries(path: Path) -> dict[str, dict[str, str]]:
    """``{query id: {"text", "tenant"}}`` from ``queries.jsonl``."""
    queries: dict[str, dict[str, str]] = {}
    for number, record in _jsonl(path, "queries"):
        query_id, text = record.get("_id"), record.get("text")
        if not isinstance(query_id, str | int) or str(query_id) == "":
            raise BeirFormatError(f"{path}:{number}: missing '_id'")
        if not isinstance(text, str):
            raise BeirFormatError(f"{path}:{number}: missing 'text'")
        queries[str(query_id)] = {"text": text, "tenant": _tenant(record)}
    if not queries:
        raise BeirFormatError(f"{path}: no queries")
    return queries


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{query id: {doc id: score}}`` from a qrels TSV (header line optional)."""
    qrels: dict[str, dict[str, int]] = {}
    try:
        handle = path.open(encoding="utf-8", newline="")
    except FileNotFoundError as exc:
        raise BeirFormatError(f"qrels file not found: {path}") from exc
    except OSError as exc:
        raise BeirFormatError(f"cannot read qrels file {path}: {exc.strerror or exc}") from exc
    with handle:
        try:
            for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
                if not row or not "".join(row).strip():
                    continue
                if number == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid"):
                    continue
                if len(row) != 3:
                    raise BeirFormatError(
                        f"{path}:{number}: expected 3 tab-separated columns (query-id, corpus-id, score)"
                    )
                try:
                    score = int(float(row[2]))
                except ValueError as exc:
                    raise BeirFormatError(f"{path}:{number}: score {row[2]!r} is not a number") from exc
                qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
        except UnicodeDecodeError as exc:
            raise BeirFormatError(f"{path}: not UTF-8 text") from exc
    if not qrels:
        raise BeirFormatError(f"{path}: no relevance judgements")
    return qrels


def load_dataset(corpus: Path, queries: Path, qrels: Path, name: str | None = None) -> BeirDataset:
    """Read and cross-check the three files (judged queries and documents must exist)."""
    docs, questions, judgements = (
        load_corpus(Path(corpus)),
        load_queries(Path(queries)),
        load_qrels(Path(qrels)),
    )
    missing_queries = sorted(set(judgements) - set(questions))
    if missing_queries:
        raise BeirFormatError(
            f"{qrels}: {len(missing_queries)} judged query id(s) not in {queries}, e.g. {missing_queries[0]!r}"
        )
    missing_docs = sorted({doc for rel in judgements.values() for doc in rel} - set(docs))
    if missing_docs:
        raise BeirFormatError(
            f"{qrels}: {len(missing_docs)} judged document id(s) not in {corpus}, e.g. {missing_docs[0]!r}"
        )
    judged = [qid for qid in questions if any(score > 0 for score in judgements.get(qid, {}).values())]
    if not judged:
        raise BeirFormatError(f"{qrels}: no query has a relevant document (score > 0)")
    return BeirDataset(
        name=name or Path(corpus).resolve().parent.name,
        corpus=docs,
        queries=questions,
        qrels=judgements,
        judged_queries=judged,
    )


def load_folder(folder: Path, split: str = "test") -> BeirDataset:
    """A dataset laid out as BEIR ships it: ``folder/{corpus,queries}.jsonl`` and ``folder/qrels/<split>.tsv``."""
    folder = Path(folder)
    return load_dataset(
        folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv", name=folder.name
    )


# --- writing ---------------------------------------------------------------------------------------


def write_dataset(
    out_dir: Path,
    corpus: Mapping[str, Mapping[str, str]],
    queries: Mapping[str, Mapping[str, str]],
    qrels: Mapping[str, Mapping[str, int]],
) -> Path:
    """Write the three BEIR files into ``out_dir`` (tenants as ``metadata.tenant`` when not the default)."""
    out_dir = Path(out_dir)
    (out_dir / "qrels").mkdir(parents=True, exist_ok=True)

    def line(record_id: str, fields: Mapping[str, str], keys: Sequence[str]) -> str:
        record: dict[str, Any] = {"_id": record_id, **{key: fields.get(key, "") for key in keys}}
        if fields.get("tenant", DEFAULT_TENANT) != DEFAULT_TENANT:
            record["metadata"] = {"tenant": fields["tenant"]}
        return json.dumps(record, ensure_ascii=False) + "\n"

    with (out_dir / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(line(doc_id, doc, ("title", "text")) for doc_id, doc in corpus.items())
    with (out_dir / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(line(query_id, query, ("text",)) for query_id, query in queries.items())
    with (out_dir / "qrels" / "test.tsv").open("w", encoding="utf-8", newline="") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id, judged in qrels.items():
            handle.writelines(f"{query_id}\t{doc_id}\t{score}\n" for doc_id, score in judged.items())
    return out_dir


def export_gold(gold: Path, sources: Path, out_dir: Path, default_tenant: str = "acme") -> dict[str, int]:
    """Export the knowledge base (articles as documents) and the answerable gold questions as a BEIR set."""
    from knowledge.documents import load_documents
    from knowledge.evaluation import check_gold_against_index, load_gold

    documents = load_documents(Path(sources), default_tenant=default_tenant).documents
    questions = load_gold(Path(gold), default_tenant=default_tenant)
    check_gold_against_index(
        questions, {"documents": [{"doc_id": d.id_, "tenant": d.metadata["tenant"]} for d in documents]}
    )
    corpus = {
        doc.id_: {"title": doc.metadata["title"], "text": doc.text, "tenant": doc.metadata["tenant"]}
        for doc in sorted(documents, key=lambda d: d.id_)
    }
    answerable = [q for q in questions if q.answerable]
    queries = {q.id: {"text": q.question, "tenant": q.tenant} for q in answerable}
    qrels = {q.id: dict.fromkeys(q.doc_ids, 1) for q in answerable}
    write_dataset(out_dir, corpus, queries, qrels)
    return {"documents": len(corpus), "queries": len(queries), "judgements": sum(map(len, qrels.values()))}


def make_synthetic(out_dir: Path, n_docs: int = 60, seed: int = 0) -> Path:
    """Write a small, deterministic BEIR set: product sheets and questions about one fact of each.

    Half of the questions reuse the sheet's words, half paraphrase them; each has exactly one relevant
    document. It exercises the whole path (format, indexing, scoring) in seconds; it is no benchmark
    of quality.
    """
    import random

    rng = random.Random(seed)
    kinds = [
        "kettle",
        "tent",
        "backpack",
        "lamp",
        "blender",
        "jacket",
        "sleeping bag",
        "frying pan",
        "speaker",
        "stove",
    ]
    colours = ["red", "blue", "green", "black", "white", "orange", "grey", "yellow"]
    materials = ["steel", "aluminium", "cotton", "nylon", "ceramic", "oak", "glass", "wool"]
    corpus: dict[str, dict[str, str]] = {}
    queries: dict[str, dict[str, str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i in range(n_docs):
        kind, colour, material = rng.choice(kinds), rng.choice(colours), rng.choice(materials)
        name = f"{rng.choice(['Alder', 'Birch', 'Cedar', 'Dune', 'Ember', 'Fjord', 'Glen', 'Heath'])} {i:03d}"
        weight, years, price = rng.randint(1, 40) / 2, rng.randint(1, 5), rng.randint(10, 400)
        doc_id = f"p{i:03d}"
        corpus[doc_id] = {
            "title": f"{name} {kind}",
            "text": (
                f"The {name} is a {colour} {kind} made of {material}. It weighs {weight} kg and costs "
                f"{price} euros. It comes with a {years}-year warranty and ships within two days. "
                f"Clean the {kind} with a soft cloth; do not use abrasive cleaners on the {material}."
            ),
            "tenant": DEFAULT_TENANT,
        }
        question = (
            f"How heavy is the {name} {kind}?"
            if i % 2
            else f"What is the {name} {kind} made of and what colour is it?"
        )
        queries[f"q{i:03d}"] = {"text": question, "tenant": DEFAULT_TENANT}
        qrels[f"q{i:03d}"] = {doc_id: 1}
    return write_dataset(Path(out_dir), corpus, queries, qrels)


# --- scoring ---------------------------------------------------------------------------------------


def ndcg(ranked: Sequence[str], gains: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains (``score`` of the qrels; 0 or missing = not relevant)."""
    dcg = sum(gains.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1))
    ideal_gains = sorted((g for g in gains.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal_gains, start=1))
    return dcg / ideal if ideal > 0 else 0.0


def recall(ranked: Sequence[str], gains: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant documents among the first ``k``."""
    relevant = {doc for doc, g in gains.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr(ranked: Sequence[str], gains: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within ``k``."""
    for rank, doc in enumerate(ranked[:k], start=1):
        if gains.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


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
) -> tuple[Any, Any]:
    """Index the corpus like the knowledge base and open it; returns ``(KnowledgeBase, BuildReport)``."""
    from llama_index.core import Document

    from knowledge.documents import EMBED_EXCLUDED_KEYS, LLM_EXCLUDED_KEYS
    from knowledge.index import build_index
    from knowledge.retrieval import KnowledgeBase

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
    kb = KnowledgeBase.load(index_dir, embed_model, fusion=fusion, dense_weight=dense_weight, llm=None)
    return kb, report


def score_kb(
    kb: Any,
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
            ranked = list(dict.fromkeys(hit.doc_id for hit in hits))[:depth]
            gains = dataset.qrels[query_id]
            ndcgs.append(ndcg(ranked, gains, 10))
            recalls.append(recall(ranked, gains, 100))
            mrrs.append(mrr(ranked, gains, 10))
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


# --- command line ----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``evaluate`` or ``export``; exit 0, or 2 with one line on stderr for bad input."""
    from app.offline import apply_offline_env

    apply_offline_env()
    parser = argparse.ArgumentParser(prog="python -m knowledge.beir", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("evaluate", help="score the retrievers on a BEIR-format set")
    run.add_argument("--corpus", type=Path, required=True)
    run.add_argument("--queries", type=Path, required=True)
    run.add_argument("--qrels", type=Path, required=True)
    run.add_argument("--retrievers", default=",".join(RETRIEVERS), help="comma-separated (default: all)")
    run.add_argument("--embed-backend", default=None, help="torch, onnx or onnx-int8 (default: configured)")
    run.add_argument("--out", type=Path, help="also write the scores as JSON here")
    export = commands.add_parser("export", help="export the knowledge base and gold questions as a BEIR set")
    export.add_argument("--gold", type=Path, required=True)
    export.add_argument("--sources", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--tenant", default="acme", help="tenant of documents and questions without one")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            counts = export_gold(args.gold, args.sources, args.out, default_tenant=args.tenant)
            print(
                f"beir: exported {counts['documents']} documents, {counts['queries']} queries, "
                f"{counts['judgements']} judgements -> {args.out}"
            )
            return 0
        retrievers = [name.strip() for name in args.retrievers.split(",") if name.strip()]
        unknown = [name for name in retrievers if name not in RETRIEVERS]
        if unknown:
            raise BeirFormatError(f"unknown retriever {unknown[0]!r} (expected {', '.join(RETRIEVERS)})")
        dataset = load_dataset(args.corpus, args.queries, args.qrels)
    except (BeirFormatError, ValueError) as exc:  # GoldSetError / SourcesError are ValueErrors too
        print(f"beir: error: {exc}", file=sys.stderr)
        return 2
    from knowledge.embeddings import local_embed_model

    result = evaluate_dataset(
        dataset,
        local_embed_model(args.embed_backend),
        retrievers=retrievers,
        show_progress=sys.stderr.isatty(),
    )
    print(
        f"{result.dataset}: {result.documents} documents ({result.chunks} chunks, built in "
        f"{result.build_seconds:.1f} s), {result.queries} judged queries"
    )
    print(f"{'retriever':<10} {'nDCG@10':>8} {'R@100':>7} {'MRR@10':>7} {'p50 ms':>7}")
    for name, values in result.scores.items():
        print(
            f"{name:<10} {values['ndcg_at_10']:>8.4f} {values['recall_at_100']:>7.4f} "
            f"{values['mrr_at_10']:>7.4f} {values['latency_ms_p50']:>7.2f}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result.__dict__, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
