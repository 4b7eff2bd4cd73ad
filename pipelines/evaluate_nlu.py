"""Stage evaluate_nlu: test the served model on the held-out split; metrics, predictions and plots."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlu.evaluation import predictions, run_nlu_test, summarise, write_predictions_csv
from nlu.rasa_runner import RasaError
from pipelines._common import stage_run, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--nlu", type=Path, required=True, help="held-out NLU data")
    parser.add_argument("--reports", type=Path, required=True, help="folder for Rasa's reports and plots")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--predictions", type=Path, required=True)
    args = parser.parse_args(argv)
    with stage_run("evaluate_nlu"):
        import mlflow

        try:
            seconds = run_nlu_test(args.model, args.nlu, args.reports)
        except RasaError as exc:
            print(f"evaluate_nlu: {exc}", file=sys.stderr)
            return 1
        metrics = {**summarise(args.reports), "test_seconds": round(seconds, 2)}
        write_json(args.metrics, metrics)
        write_predictions_csv(predictions(args.reports), args.predictions)
        mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        mlflow.log_artifacts(str(args.reports), "reports")
        mlflow.log_artifact(str(args.predictions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
