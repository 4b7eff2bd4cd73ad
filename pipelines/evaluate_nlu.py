"""Stage evaluate_nlu: test the served model on the held-out split, parsing as the server does.

Metrics (intents, entities, out-of-scope at the served threshold and without one, parse latency),
per-intent and entity reports, misclassified examples, the confusion matrix (PNG and DVC plot) and the
threshold curve on the test split (for reading only: the threshold was chosen on validation data).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nlu import oos
from nlu.evaluation import prediction_rows, read_predictions, summarise, write_predictions_csv, write_reports
from nlu.rasa_runner import RasaError
from nlu.training import predict
from pipelines._common import load_params, log_metrics, stage_run, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--nlu", type=Path, required=True, help="held-out NLU data")
    parser.add_argument("--threshold", type=Path, help="select_threshold_nlu's choice (JSON)")
    parser.add_argument("--reports", type=Path, required=True, help="folder for reports and plots")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--curve", type=Path, help="test-split threshold curve (CSV; PNG beside it)")
    args = parser.parse_args(argv)
    train_params = load_params("train_nlu")
    with stage_run("evaluate_nlu"):
        import mlflow

        raw = args.reports / "predictions.jsonl"
        try:
            info = predict(args.model, [args.nlu], raw)
        except RasaError as exc:
            print(f"evaluate_nlu: {exc}", file=sys.stderr)
            return 1
        rows = read_predictions(raw)
        metrics = {**summarise(rows), "model_load_seconds": info["load_seconds"]}
        write_json(args.metrics, metrics)
        write_predictions_csv(prediction_rows(rows), args.predictions)
        write_reports(rows, args.reports, "Intent confusion (held-out split)")
        if args.curve:
            chosen = (
                float(json.loads(args.threshold.read_text())["threshold"])
                if args.threshold
                else float(train_params["fallback_threshold"])
            )
            points = oos.curve(oos.scored(rows), 0.01, float(train_params["ambiguity_threshold"]))
            oos.write_curve_csv(points, args.curve)
            oos.plot_curve(
                {"test": points},
                chosen,
                args.curve.with_suffix(".png"),
                "Out-of-scope threshold (held-out test split; chosen on validation)",
            )
            mlflow.log_artifact(str(args.curve))
            mlflow.log_artifact(str(args.curve.with_suffix(".png")))
        log_metrics("evaluate_nlu", metrics)
        mlflow.log_artifacts(str(args.reports), "reports")
        mlflow.log_artifact(str(args.predictions))
    print("evaluate_nlu: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
