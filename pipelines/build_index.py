"""DVC stage ``build_index``: chunk and embed the knowledge documents into the index, fit its answerability model.

    python -m pipelines.build_index --sources knowledge/sources.yml --out knowledge/index \\
        [--dev knowledge/eval/dev.yml]

Parameters come from the ``build_index`` section of params.yaml (chunking, embedding back-end and batch
size, vector store, hybrid fusion, answerability fit). Ingestion is incremental: embeddings are cached
next to the index (``knowledge/.cache/``), so a rebuild embeds only new or changed chunks. With
``--dev`` the answerability model and the passage ranker (tier 0's choice of passage, :mod:`knowledge.rerank`)
are fitted on those questions (never on the gold set) and stored in the index, with their cross-validated
figures on them (folds shuffled with ``base.seed``); the ``passages`` params (longest quoted passage, chunks it
may come from) travel with the index too. The vector store is the embedded one unless ``SWITCHBOARD_VECTOR_STORE=pgvector`` (with
``SWITCHBOARD_PGVECTOR_URL``) or the ``vector_store`` param says otherwise.

The only output is the index folder (with its ``manifest.json``); params, build figures and the manifest
go to MLflow. A broken sources file, dev file or store configuration, or an empty knowledge base, prints
one line on stderr and exits with 2; unreadable or empty documents are reported by name and skipped.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.offline import apply_offline_env
from knowledge.calibration import describe_cut_offs, finalizer
from knowledge.documents import SourcesError, load_documents
from knowledge.embeddings import embed_backend, embed_model_name, local_embed_model
from knowledge.gold import GoldSetError, load_gold
from knowledge.index import BuildReport, IndexBuildError, build_index
from knowledge.stores import StoreConfig, StoreConfigError
from pipelines._common import base_params, load_params, log_metrics, stage_run

STAGE = "build_index"


class PassageParams(BaseModel):
    """``build_index.passages``: the extractive answer's passage (stored with the index) and its ranker's fit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_chars: int = Field(700, ge=80, description="longest quoted passage, in characters")
    chunks: int = Field(3, ge=1, description="the passage comes from one of this many best chunks")
    whole_section: bool = Field(
        True, description="a section that fits in max_chars is quoted whole (knowledge/extractive.py)"
    )
    ranker_c: float = Field(1.0, gt=0, description="inverse L2 strength of the passage ranker")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments: where the sources are, where the index goes, the dev questions."""
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sources", type=Path, required=True, help="sources.yml listing the document folders"
    )
    parser.add_argument("--out", type=Path, required=True, help="index folder to (re)build")
    parser.add_argument("--dev", type=Path, help="dev questions to fit the answerability model on")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the index; return the process exit code (0 ok, 2 bad input)."""
    apply_offline_env()
    args = parse_args(argv)
    params = load_params(STAGE)
    base = base_params()
    tenant = base.tenant
    try:
        store = StoreConfig.resolve(params)
        passages = _passage_params(params)
        dev = load_gold(args.dev, default_tenant=tenant) if args.dev else None
        loaded = load_documents(args.sources, default_tenant=tenant)
        for item in loaded.skipped:  # reported before the (long) build, by name
            print(f"{STAGE}: skipping {item.path}: {item.reason}", file=sys.stderr)
        if not loaded.documents:  # fail before loading the model and opening an MLflow run
            raise IndexBuildError(f"no usable knowledge documents in {args.sources}")
        embed_model = local_embed_model(params.get("embed_backend"))
        run_params = {
            **params,
            "default_tenant": tenant,
            "embedding_model": embed_model_name(embed_model),
            "embedding_backend": embed_backend(embed_model),
            "vector_store": store.kind,
        }
        with stage_run(STAGE, run_params):
            report = build_index(
                loaded,
                args.out,
                chunk_size=int(params["chunk_size"]),
                chunk_overlap=int(params["chunk_overlap"]),
                embed_model=embed_model,
                store=store,
                batch_size=int(params.get("batch_size", 32)),
                show_progress=not args.quiet,
                finalize=finalizer(
                    dev,
                    embed_model,
                    fusion=str(params.get("fusion", "rrf")),
                    dense_weight=float(params.get("dense_weight", 0.5)),
                    c=float(params.get("answerability_c", 1.0)),
                    max_false_idk=float(params.get("max_false_idk", 0.05)),
                    seed=base.seed,
                    store=store,
                    passages=passages.model_dump(),
                ),
            )
            _log_to_mlflow(report)
    except (SourcesError, IndexBuildError, GoldSetError, StoreConfigError) as exc:
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    print(_summary(report))
    return 0


def _passage_params(params: dict) -> PassageParams:
    try:
        return PassageParams.model_validate(params.get("passages") or {})
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise IndexBuildError(f"params build_index.passages.{where}: {problem['msg']}") from None


def _log_to_mlflow(report: BuildReport) -> None:
    import mlflow

    mlflow.set_tag("kb_version", report.kb_version)
    metrics = {
        "documents": report.documents,
        "chunks": report.chunks,
        "skipped_files": len(report.skipped),
        "build_seconds": report.seconds,
        "chunks_per_second": report.chunks_per_second,
        "embedded_chunks": report.embedded,
        "cached_chunks": report.from_cache,
    }
    if report.embedded:
        metrics["embedded_per_second"] = report.embedded_per_second
    answerability = report.manifest.get("answerability") or {}
    for key in ("suggested_min_score", "dev_cv_auc"):
        if isinstance(answerability.get(key), int | float):
            metrics[f"answerability_{key}"] = float(answerability[key])
    ranker = report.manifest.get("passage_ranker") or {}
    for key in ("dev_cv_top1", "baseline_top1", "candidate_recall"):
        if isinstance(ranker.get(key), int | float):
            metrics[f"passage_ranker_{key}"] = float(ranker[key])
    log_metrics(STAGE, metrics)
    mlflow.log_dict(report.manifest, "manifest.json")


def _summary(report: BuildReport) -> str:
    speed = (
        f"embedded {report.embedded} ({report.embedded_per_second:.1f} chunks/s), {report.from_cache} from cache"
        if report.embedded
        else f"all {report.from_cache} from cache"
    )
    lines = [
        f"{STAGE}: {report.documents} documents, {report.chunks} chunks in {report.seconds:.1f} s "
        f"({speed}) -> {report.out_dir} (kb_version {report.kb_version})"
    ]
    answerability = report.manifest.get("answerability") or {}
    if answerability.get("kind") == "logistic":
        lines.append(
            f"{STAGE}: answerability fitted on {answerability['dev_questions']} dev questions "
            f"({answerability.get('cv_folds')}-fold cross-validated AUC {answerability.get('dev_cv_auc')}); "
            "suggested cut-off "
            + describe_cut_offs(answerability["suggested_min_score"], answerability.get("tenant_min_scores"))
        )
    ranker = report.manifest.get("passage_ranker") or {}
    if ranker.get("dev_cv_top1") is not None:
        lines.append(
            f"{STAGE}: passage ranker fitted on {ranker['questions']} dev questions: right passage first in "
            f"{ranker['dev_cv_top1']} ({ranker.get('cv_folds')}-fold cross-validated; best sentence alone: "
            f"{ranker.get('baseline_top1')}; a right passage among the candidates: {ranker.get('candidate_recall')})"
        )
    lines += [f"{STAGE}: skipped {item.path}: {item.reason}" for item in report.skipped]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
