"""DVC stage ``build_index``: chunk and embed the knowledge documents into the on-disk index.

    python -m pipelines.build_index --sources knowledge/sources.yml --out knowledge/index

Parameters come from the ``build_index`` section of params.yaml; the only output is the index
folder (with its ``manifest.json``). Params, build figures and the manifest go to MLflow.
A broken sources file or an empty knowledge base prints one line on stderr and exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from knowledge.documents import SourcesError, load_documents
from knowledge.embeddings import embed_model_name, local_embed_model
from knowledge.index import BuildReport, IndexBuildError, build_index
from pipelines._common import load_params, stage_run

STAGE = "build_index"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments: where the sources are and where the index goes."""
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sources", type=Path, required=True, help="sources.yml listing the document folders"
    )
    parser.add_argument("--out", type=Path, required=True, help="index folder to (re)build")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the index; return the process exit code (0 ok, 2 bad input)."""
    args = parse_args(argv)
    params = load_params(STAGE)
    tenant = load_params("base").get("tenant", "acme")
    try:
        loaded = load_documents(args.sources, default_tenant=tenant)
        if not loaded.documents:  # fail before loading the model and opening an MLflow run
            raise IndexBuildError(f"no usable knowledge documents in {args.sources}")
        embed_model = local_embed_model()
        run_params = {**params, "default_tenant": tenant, "embedding_model": embed_model_name(embed_model)}
        with stage_run(STAGE, run_params):
            report = build_index(
                loaded,
                args.out,
                chunk_size=int(params["chunk_size"]),
                chunk_overlap=int(params["chunk_overlap"]),
                embed_model=embed_model,
            )
            _log_to_mlflow(report)
    except (SourcesError, IndexBuildError) as exc:
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    print(_summary(report))
    return 0


def _log_to_mlflow(report: BuildReport) -> None:
    import mlflow

    mlflow.set_tag("kb_version", report.kb_version)
    mlflow.log_metrics(
        {
            "documents": report.documents,
            "chunks": report.chunks,
            "skipped_files": len(report.skipped),
            "build_seconds": report.seconds,
            "chunks_per_second": report.chunks_per_second,
        }
    )
    mlflow.log_dict(report.manifest, "manifest.json")


def _summary(report: BuildReport) -> str:
    lines = [
        f"{STAGE}: {report.documents} documents, {report.chunks} chunks in {report.seconds:.1f} s "
        f"({report.chunks_per_second:.1f} chunks/s) -> {report.out_dir} (kb_version {report.kb_version})"
    ]
    lines += [f"{STAGE}: skipped {item.path}: {item.reason}" for item in report.skipped]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
