"""DVC stage ``render_charts``: every chart of the pipeline's results as SVG and PNG files that open without a
browser or network (the charts of app/analytics/charts.py, the evaluation page's; vl-convert renders them).

    python -m pipelines.render_charts --nlu-results nlu/results --rag-results knowledge/results \\
        --bot-results nlu/results/bot --policy-results nlu/results/policies --out reports/charts

A chart whose result file is absent is skipped (named on stderr); an unreadable result file exits 2 with one
line. The images are logged to MLflow too (artifacts ``charts/``), so the UI shows them beside each run's figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from app.analytics.charts import CHARTS, render_all
from app.analytics.results import BENCHMARK_RESULTS, ResultPaths, ResultUnreadable
from pipelines._common import log_metrics, stage_run

STAGE = "render_charts"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--nlu-results", type=Path, required=True)
    parser.add_argument("--rag-results", type=Path, required=True)
    parser.add_argument("--bot-results", type=Path, required=True)
    parser.add_argument("--policy-results", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for <chart>.svg and <chart>.png")
    args = parser.parse_args(argv)
    paths = ResultPaths(
        Path("."),
        args.nlu_results,
        args.rag_results,
        Path(BENCHMARK_RESULTS),
        args.bot_results,
        args.policy_results,
    )
    shutil.rmtree(args.out, ignore_errors=True)  # a chart whose data went away must not stay behind
    try:
        written = render_all(paths, args.out)
    except ResultUnreadable as exc:
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    with stage_run(STAGE):  # the images beside the figures, per commit, in the MLflow UI
        import mlflow

        log_metrics(STAGE, {"charts": len(written)})
        mlflow.log_artifacts(str(args.out), "charts")
    for source in CHARTS:
        if source.name not in written:
            print(f"{STAGE}: skipped {source.name}: {source.source(paths)} does not exist", file=sys.stderr)
    print(f"{STAGE}: {len(written)} charts -> {args.out} (SVG and PNG)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
