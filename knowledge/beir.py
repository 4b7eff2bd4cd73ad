"""Score the retrievers on a BEIR-format set, or export our gold set as one: ``python -m knowledge.beir``.

    python -m knowledge.beir evaluate --corpus D/corpus.jsonl --queries D/queries.jsonl --qrels D/qrels/test.tsv
    python -m knowledge.beir export --gold knowledge/eval/gold.yml --sources knowledge/sources.yml --out DIR

The format is :mod:`knowledge.beir_format`, the scoring :mod:`knowledge.beir_eval`, the export
:mod:`knowledge.beir_export`. Malformed files make the command exit 2 with one line naming the file, line
and problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from app.offline import apply_offline_env
from knowledge.beir_eval import evaluate_dataset
from knowledge.beir_export import export_gold
from knowledge.beir_format import BeirFormatError, load_dataset
from knowledge.retrievers import RETRIEVERS


def main(argv: Sequence[str] | None = None) -> int:
    """``evaluate`` or ``export``; exit 0, or 2 with one line on stderr for bad input."""
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
