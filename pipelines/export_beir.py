"""DVC stage ``export_beir``: the knowledge base and the answerable gold questions as a BEIR-format set.

    python -m pipelines.export_beir --gold knowledge/eval/gold.yml --sources knowledge/sources.yml \\
        --out knowledge/beir/gold

Writes ``corpus.jsonl`` (one line per article), ``queries.jsonl`` and ``qrels/test.tsv``, with each
article's and question's tenant in ``metadata.tenant``. Score it with ``python -m knowledge.beir
evaluate`` or ``benchmarks/retrieval.py``. A malformed gold or sources file exits 2 with one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from knowledge.beir_export import export_gold
from knowledge.beir_format import BeirFormatError
from pipelines._common import base_params

STAGE = "export_beir"


def main(argv: Sequence[str] | None = None) -> int:
    """Export; return the exit code (0 ok, 2 bad input)."""
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, required=True, help="gold questions (YAML)")
    parser.add_argument("--sources", type=Path, required=True, help="sources.yml of the knowledge base")
    parser.add_argument("--out", type=Path, required=True, help="folder for the BEIR files")
    args = parser.parse_args(argv)
    tenant = base_params().tenant
    try:
        counts = export_gold(args.gold, args.sources, args.out, default_tenant=tenant)
    except (BeirFormatError, ValueError) as exc:
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{STAGE}: {counts['documents']} documents, {counts['queries']} queries, "
        f"{counts['judgements']} judgements -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
