"""NLU benchmark: every (dataset x config) cell trained and evaluated as served, printed as ONE table.

Each cell is ``pipelines.benchmark_nlu.run_benchmark`` (a real ``rasa train nlu`` with our components,
every test message parsed one at a time as the server does, OOS threshold chosen on validation data)
and its results are kept in ``benchmarks/results/nlu/<dataset>__<config>.json`` (with the threshold curve
PNG where the data has out-of-scope examples; models, predictions and reports stay in
``nlu/build/benchmark/``); a cell with results is
not rerun unless ``--force``. The table shows them next to the published numbers and the measured
floor from ../shared/datasets/README.md.

    python benchmarks/nlu.py                                  # the default matrix (hours of CPU on 2 cores)
    python benchmarks/nlu.py --datasets bot snips --configs ours light
    python benchmarks/nlu.py --table                          # print the table from saved results only
    python benchmarks/nlu.py --datasets clinc150_threshold_only --configs ours_ft   # a variant (VARIANTS)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.offline import apply_offline_env  # noqa: E402

apply_offline_env()

RESULTS = ROOT / "benchmarks" / "results" / "nlu"
WORK = ROOT / "nlu" / "build" / "benchmark"
DEFAULT_MATRIX = [
    ("bot", "ours"),
    ("bot", "light"),
    ("bot", "diet"),
    ("bot", "ours_ft"),
    ("banking77", "ours"),
    ("banking77", "light"),
    ("clinc150", "ours"),
    ("clinc150", "light"),
    ("snips", "ours"),
    ("snips", "light"),
]

# Variants of a public set, run as a dataset of their own: (dataset, benchmark_nlu params over params.yaml's).
# clinc150_threshold_only: no oos_train class, out of scope by the threshold alone (benchmarks/oos_detectors.py:
# with oos_train a class, the threshold chosen on oos_val catches far fewer of oos_test's messages).
VARIANTS = {"clinc150_threshold_only": ("clinc150", {"oos_class": False})}

# Published results (same splits) and the strongest measured baseline, from ../shared/datasets/README.md.
PUBLISHED = {
    "banking77": "BERT fine-tuned 93.66 acc; floor (MiniLM+TF-IDF+LR) 94.2",
    "clinc150": "BERT 96.2 / 52.3 (threshold); floor 93.5 / 87.6, 96.1 no threshold",
    "snips": "JointBERT 99.14 acc / 96.90 slot F1; TF-IDF baseline 97.4",
    "bot": "-",
}


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def table(results: list[dict]) -> str:
    """One markdown table: dataset x config."""
    header = (
        "| dataset | config | accuracy | macro F1 | entity F1 | in-scope acc / OOS recall (threshold) "
        "| in-scope acc, no threshold | train time (fine-tuning) | model | parse p50 / p95 | published / floor |"
    )
    lines = [header, "| " + " | ".join(["---"] * 11) + " |"]
    for r in results:
        source = VARIANTS.get(r["dataset"], (r["dataset"],))[0]  # a variant has its public set's references
        oos = "-"
        if r.get("oos_recall") is not None:
            oos = f"{pct(r['in_scope_accuracy'])} / {pct(r['oos_recall'])} ({r['threshold']:.2f})"
        no_threshold = pct(r.get("in_scope_accuracy_no_threshold")) if "oos_recall_no_threshold" in r else "-"
        tuning = r.get("finetune_seconds") or 0.0
        train = f"{(r['train_seconds'] + tuning) / 60:.1f} min" + (f" ({tuning / 60:.1f})" if tuning else "")
        size = f"{r['model_mb']:.0f} MB" if r.get("model_mb") is not None else "-"
        lines.append(
            f"| {r['dataset']} | {r['config']} | {pct(r['intent_accuracy'], 2)} | {pct(r['intent_macro_f1'])} "
            f"| {pct(r.get('entity_f1'))} | {oos} | {no_threshold} | {train} | {size} "
            f"| {r['latency_p50_ms']:.1f} / {r['latency_p95_ms']:.1f} ms | {PUBLISHED.get(source, '-')} |"
        )
    return "\n".join(lines)


def load_results(cells: list[tuple[str, str]]) -> list[dict]:
    found = []
    for dataset, config in cells:
        path = RESULTS / f"{dataset}__{config}.json"
        if path.exists():
            found.append(json.loads(path.read_text()))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", help="restrict to these datasets")
    parser.add_argument("--configs", nargs="+", help="restrict to these configs")
    parser.add_argument("--force", action="store_true", help="rerun cells that have results")
    parser.add_argument("--table", action="store_true", help="only print the table from saved results")
    args = parser.parse_args(argv)
    cells = [
        (d, c)
        for d, c in DEFAULT_MATRIX
        if (not args.datasets or d in args.datasets) and (not args.configs or c in args.configs)
    ]
    if args.datasets and args.configs:  # any explicit combination, also outside the default matrix
        cells = [(d, c) for d in args.datasets for c in args.configs]

    if not args.table:
        import os

        os.chdir(ROOT)  # params.yaml, nlu/configs and the encoder are read relative to the repo root
        from rich.progress import Progress

        from pipelines._common import base_params, load_params, stage_run
        from pipelines.benchmark_nlu import run_benchmark

        params = load_params("benchmark_nlu")
        todo = [(d, c) for d, c in cells if args.force or not (RESULTS / f"{d}__{c}.json").exists()]
        RESULTS.mkdir(parents=True, exist_ok=True)
        with Progress() as progress:
            task = progress.add_task("NLU benchmark", total=len(todo))
            for dataset, config in todo:
                progress.update(task, description=f"{dataset} / {config}")
                start = time.perf_counter()
                source, overrides = VARIANTS.get(dataset, (dataset, {}))
                cell_params = {**params, **overrides}
                with stage_run("benchmark_nlu", {**cell_params, "dataset": dataset, "config": config}):
                    import mlflow

                    metrics = run_benchmark(
                        source,
                        config,
                        cell_params,
                        load_params("oos"),
                        load_params("train_nlu"),
                        WORK / f"{dataset}_{config}",
                        WORK / f"{dataset}_{config}" / "results",
                        base_params().seed,
                        load_params("finetune_encoder"),
                        load_params("export_encoder"),
                    )
                    metrics["dataset"] = dataset
                    mlflow.set_tags({"dataset": dataset, "config": config, "source": "benchmarks/nlu.py"})
                    mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
                (RESULTS / f"{dataset}__{config}.json").write_text(json.dumps(metrics, indent=2) + "\n")
                curve = WORK / f"{dataset}_{config}" / "results" / "threshold_curve.png"
                if curve.exists():
                    shutil.copyfile(curve, RESULTS / f"{dataset}__{config}_threshold_curve.png")
                progress.console.print(
                    f"{dataset} / {config}: accuracy {pct(metrics['intent_accuracy'], 2)} "
                    f"in {time.perf_counter() - start:.0f} s"
                )
                progress.advance(task)
    print(table(load_results(cells)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
