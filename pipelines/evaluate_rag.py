"""DVC stage ``evaluate_rag``: score retrieval and "I don't know" on the gold questions.

    python -m pipelines.evaluate_rag --index knowledge/index --gold knowledge/eval/gold.yml \\
        --out knowledge/results

Writes ``metrics.json``, ``per_question.csv``, ``hit_at_k.csv`` (k, hit_rate: a DVC plot) and
``hit_at_k.png`` into ``--out`` and logs them to MLflow. ``top_k`` comes from the ``evaluate_rag``
params; the cut-off and the chunks per answer from ``serve`` (``knowledge_min_score``,
``knowledge_top_k``), so "I don't know" is measured as the bot serves it. A missing or malformed
gold file, a gold doc id the index does not hold, or a missing index prints one line on stderr and
exits with 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowledge.evaluation import EvaluationResult, check_gold_against_index, evaluate, load_gold
from knowledge.index import read_manifest
from knowledge.retrieval import KnowledgeBase
from pipelines._common import load_params, stage_run, write_json

STAGE = "evaluate_rag"
MAX_K = 10


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments: the index, the gold questions and the results folder."""
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="index folder built by build_index")
    parser.add_argument("--gold", type=Path, required=True, help="gold questions (YAML)")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; return the process exit code (0 ok, 2 bad input)."""
    args = parse_args(argv)
    top_k = int(load_params(STAGE).get("top_k", 5))
    serve = load_params("serve")
    min_score = float(serve.get("knowledge_min_score", 0.35))
    answer_top_k = int(serve.get("knowledge_top_k", 3))
    try:
        questions = load_gold(args.gold, default_tenant=load_params("base").get("tenant", "acme"))
        check_gold_against_index(questions, read_manifest(args.index))
        kb = KnowledgeBase.load(args.index)
    except (ValueError, FileNotFoundError) as exc:  # GoldSetError, or an index built with another model
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    run_params = {
        "top_k": top_k,
        "knowledge_min_score": min_score,
        "knowledge_top_k": answer_top_k,
        "kb_version": kb.version,
        "questions": len(questions),
    }
    with stage_run(STAGE, run_params):
        result = evaluate(
            kb, questions, top_k=top_k, min_score=min_score, answer_top_k=answer_top_k, max_k=MAX_K
        )
        paths = write_results(result, args.out)
        _log_to_mlflow(result, paths)
    print(_summary(result, top_k))
    return 0


def write_results(result: EvaluationResult, out_dir: Path) -> list[Path]:
    """Write the metrics, per-question rows, hit@k curve (CSV) and its plot; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        write_json(out_dir / "metrics.json", result.metrics),
        _write_csv(out_dir / "per_question.csv", result.rows),
        _write_csv(out_dir / "hit_at_k.csv", result.hit_curve),
        _plot_hit_curve(out_dir / "hit_at_k.png", result.hit_curve),
    ]
    return paths


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path


def _plot_hit_curve(path: Path, curve: Sequence[dict[str, float]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.5), dpi=100)
    axes.plot([point["k"] for point in curve], [point["hit_rate"] or 0.0 for point in curve], marker="o")
    axes.set(xlabel="k (documents retrieved)", ylabel="hit@k", ylim=(0, 1.02), title="Retrieval hit@k")
    axes.set_xticks([point["k"] for point in curve])
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _log_to_mlflow(result: EvaluationResult, paths: Sequence[Path]) -> None:
    import mlflow

    mlflow.log_metrics(_numeric(result.metrics))
    for k_point in result.hit_curve:
        if k_point["hit_rate"] is not None:
            mlflow.log_metric("hit_rate_curve", k_point["hit_rate"], step=int(k_point["k"]))
    for path in paths:
        mlflow.log_artifact(str(path))


def _numeric(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Flatten nested metrics to MLflow names (``by_kind.direct.mrr``), dropping undefined ones."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(_numeric(value, f"{prefix}{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = float(value)
    return flat


def _summary(result: EvaluationResult, top_k: int) -> str:
    metrics = result.metrics

    def show(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    return (
        f"{STAGE}: {metrics['questions']} questions: hit@1 {show('hit_at_1')}, hit@{top_k} "
        f"{show(f'hit_at_{top_k}')}, MRR {show('mrr')}, recall@{top_k} {show(f'recall_at_{top_k}')}, "
        f"IDK precision {show('idk_precision')} / recall {show('idk_recall')}, "
        f"p50 {show('latency_ms_p50')} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
