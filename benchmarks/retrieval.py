"""Retrieval benchmark: retriever x dataset (nDCG@10, recall@100, build time, query p50), BM25 as baseline.

    python benchmarks/retrieval.py                          # our gold set (BEIR export) + a tiny generated set
    python benchmarks/retrieval.py path/to/scifact path/to/nfcorpus --no-tiny
    python benchmarks/retrieval.py --throughput             # also: embedding back-ends, chunks/s and quality

Each dataset argument is a folder in BEIR's layout (``corpus.jsonl``, ``queries.jsonl``,
``qrels/test.tsv``), e.g. a public set unzipped from the BEIR distribution (SciFact, NFCorpus, FiQA...).
Every dataset is indexed from scratch (no embedding cache, so the build time includes embedding) with the
knowledge base's own chunking, MiniLM embeddings and embedded vector store, then searched with the dense,
BM25 and hybrid retrievers; BM25 is the baseline, measured in the same run. The query latency is one
retrieval, question embedding included, with the process otherwise idle.

``--throughput`` embeds ``--chunks`` synthetic chunks of about 200 words with each embedding back-end
(torch, onnx, onnx-int8) after a warm-up, and scores dense retrieval on the gold set with each, so speed
and quality are compared side by side. ``--json`` writes every figure; ``--plot`` a PNG of the nDCG table.
Long runs show progress bars on stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.offline import apply_offline_env  # noqa: E402

apply_offline_env()

from knowledge.beir_eval import evaluate_dataset  # noqa: E402
from knowledge.beir_export import export_gold  # noqa: E402
from knowledge.beir_format import BeirFormatError, load_folder  # noqa: E402
from knowledge.beir_synthetic import make_synthetic  # noqa: E402
from knowledge.embeddings import BACKENDS, local_embed_model, resolve_backend  # noqa: E402
from knowledge.retrievers import RETRIEVERS  # noqa: E402

GOLD_EXPORT = ROOT / "knowledge" / "beir" / "gold"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", type=Path, help="BEIR-format folders (default: our gold set)")
    parser.add_argument("--no-gold", action="store_true", help="leave out our exported gold set")
    parser.add_argument("--no-tiny", action="store_true", help="leave out the tiny generated set")
    parser.add_argument(
        "--embed-backend", default=None, help=f"one of {', '.join(BACKENDS)} (default: configured)"
    )
    build = _build_params()
    parser.add_argument(
        "--fusion",
        default=build.get("fusion", "rrf"),
        choices=("rrf", "relative"),
        help="hybrid fusion (default: params.yaml build_index.fusion)",
    )
    parser.add_argument(
        "--dense-weight",
        type=float,
        default=float(build.get("dense_weight", 0.5)),
        help="weight of the dense list (default: params.yaml build_index.dense_weight)",
    )
    parser.add_argument("--throughput", action="store_true", help="also compare the embedding back-ends")
    parser.add_argument("--chunks", type=int, default=256, help="chunks embedded per back-end (--throughput)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--json", type=Path, help="write all figures as JSON")
    parser.add_argument("--plot", type=Path, help="write a PNG of nDCG@10 per retriever and dataset")
    return parser.parse_args(argv)


def _build_params() -> dict[str, Any]:
    import yaml

    path = ROOT / "params.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("build_index") or {} if path.is_file() else {}


def gold_dataset(work: Path) -> Path:
    """Our gold set in BEIR format: the DVC output if present, else a fresh export."""
    if (GOLD_EXPORT / "corpus.jsonl").is_file():
        return GOLD_EXPORT
    return Path(_export(work / "gold"))


def _export(out: Path) -> Path:
    export_gold(ROOT / "knowledge" / "eval" / "gold.yml", ROOT / "knowledge" / "sources.yml", out)
    return out


def run_datasets(folders: list[Path], embed_model: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for folder in folders:
        dataset = load_folder(folder)
        print(
            f"· {dataset.name}: {len(dataset.corpus)} documents, {len(dataset.judged_queries)} judged queries",
            file=sys.stderr,
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="bench-") as work:
            result = evaluate_dataset(
                dataset,
                embed_model,
                work_dir=Path(work),
                show_progress=True,
                fusion=args.fusion,
                dense_weight=args.dense_weight,
            )
        for name in RETRIEVERS:
            rows.append(
                {
                    "dataset": result.dataset,
                    "retriever": name,
                    "documents": result.documents,
                    "chunks": result.chunks,
                    "queries": result.queries,
                    "build_seconds": result.build_seconds,
                    **result.scores[name],
                }
            )
    return rows


def synthetic_chunks(n: int, words: int = 200, seed: int = 0) -> list[str]:
    """``n`` texts of ``words`` words drawn from our articles (realistic vocabulary, ~256 word pieces)."""
    vocabulary = " ".join(p.read_text() for p in sorted((ROOT / "knowledge" / "docs").rglob("*.md"))).split()
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocabulary) for _ in range(words)) for _ in range(n)]


def throughput(args: argparse.Namespace, gold: Path) -> list[dict[str, Any]]:
    """chunks/s of every back-end and batch size, and dense retrieval quality on the gold set."""
    from tqdm.auto import tqdm

    texts = synthetic_chunks(args.chunks)
    dataset = load_folder(gold)
    rows = []
    for backend in BACKENDS:
        model = local_embed_model(backend)
        model.get_text_embedding_batch(texts[:16])  # warm-up: first-call allocations
        for batch in args.batch_sizes:
            started = time.perf_counter()
            for start in tqdm(range(0, len(texts), batch), desc=f"{backend} b{batch}", leave=False):
                model.get_text_embedding_batch(texts[start : start + batch])
            seconds = time.perf_counter() - started
            rows.append(
                {
                    "backend": backend,
                    "batch_size": batch,
                    "chunks": len(texts),
                    "chunks_per_second": round(len(texts) / seconds, 1),
                }
            )
        with tempfile.TemporaryDirectory(prefix="bench-") as work:
            result = evaluate_dataset(dataset, model, retrievers=["dense"], work_dir=Path(work))
        for row in rows:
            if row["backend"] == backend:
                row["gold_dense_ndcg_at_10"] = result.scores["dense"]["ndcg_at_10"]
                row["gold_dense_mrr_at_10"] = result.scores["dense"]["mrr_at_10"]
    return rows


def print_tables(rows: list[dict[str, Any]], speed: list[dict[str, Any]]) -> None:
    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    if rows:
        print(
            "\n| dataset | docs | chunks | queries | build s | retriever | nDCG@10 | Δ vs BM25 | recall@100 | MRR@10 | p50 ms |"
        )
        print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
        for dataset in datasets:
            mine = {row["retriever"]: row for row in rows if row["dataset"] == dataset}
            base = mine["bm25"]["ndcg_at_10"]
            for name in ("bm25", "dense", "hybrid"):
                row = mine[name]
                delta = "baseline" if name == "bm25" else f"{100 * (row['ndcg_at_10'] - base):+.1f} pts"
                print(
                    f"| {dataset} | {row['documents']} | {row['chunks']} | {row['queries']} | "
                    f"{row['build_seconds']:.1f} | {name} | {row['ndcg_at_10']:.4f} | {delta} | "
                    f"{row['recall_at_100']:.4f} | {row['mrr_at_10']:.4f} | {row['latency_ms_p50']:.1f} |"
                )
    if speed:
        print(
            "\n| embedding back-end | batch | chunks/s (~200 words) | gold dense nDCG@10 | gold dense MRR@10 |"
        )
        print("| --- | ---: | ---: | ---: | ---: |")
        for row in speed:
            print(
                f"| {row['backend']} | {row['batch_size']} | {row['chunks_per_second']:.1f} | "
                f"{row['gold_dense_ndcg_at_10']:.4f} | {row['gold_dense_mrr_at_10']:.4f} |"
            )


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(row["dataset"] for row in rows))
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    width = 0.27
    for i, name in enumerate(("bm25", "dense", "hybrid")):
        values = [
            next(r["ndcg_at_10"] for r in rows if r["dataset"] == d and r["retriever"] == name)
            for d in datasets
        ]
        axes.bar([j + i * width for j in range(len(datasets))], values, width=width, label=name)
    axes.set_xticks([j + width for j in range(len(datasets))], datasets)
    axes.set(ylabel="nDCG@10", ylim=(0, 1.05), title="Retrieval per dataset (BM25 = baseline)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        backend = resolve_backend(args.embed_backend)
    except ValueError as exc:
        print(f"retrieval benchmark: error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        work = Path(tmp)
        folders = list(args.datasets)
        if not args.no_gold:
            folders.insert(0, gold_dataset(work))
        if not args.no_tiny:
            folders.append(make_synthetic(work / "tiny-synthetic"))
        try:
            for folder in folders:
                load_folder(folder)  # fail fast, before any model is loaded
        except BeirFormatError as exc:
            print(f"retrieval benchmark: error: {exc}", file=sys.stderr)
            return 2
        embed_model = local_embed_model(backend)
        rows = run_datasets(folders, embed_model, args)
        speed = (
            throughput(args, folders[0] if not args.no_gold else gold_dataset(work))
            if args.throughput
            else []
        )
    print_tables(rows, speed)
    if args.plot and rows:
        plot(rows, args.plot)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
                    "embed_backend": backend,
                    "fusion": args.fusion,
                    "dense_weight": args.dense_weight,
                    "retrieval": rows,
                    "embedding": speed,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
