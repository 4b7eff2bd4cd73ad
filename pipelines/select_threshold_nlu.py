"""Stage select_threshold_nlu: choose the out-of-scope threshold on validation data, never on test.

Trains the configured NLU pipeline on the training split minus its validation share, parses the
validation share as the server would, computes in-scope accuracy and OOS recall at every threshold and
applies the rule in params.yaml (``oos``). train_nlu writes the chosen threshold into the served config.
Outputs: the choice (JSON), the whole validation curve (CSV for the DVC plot, and a PNG).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlu import oos
from nlu.evaluation import calibration_report, read_predictions
from nlu.rasa_runner import RasaError
from nlu.training import validation_predictions
from pipelines._common import load_params, log_metrics, stage_run, write_json


def select(points: list[dict], params: dict, train_params: dict) -> dict:
    """The chosen threshold and the validation point it gives (a JSON-ready dict)."""
    threshold, how = oos.choose_threshold(
        points,
        params.get("rule", "balanced"),
        float(params.get("min_oos_recall", 0.7)),
        float(train_params["fallback_threshold"]),
    )
    at = min(points, key=lambda p: abs(p["threshold"] - threshold))
    return {
        "threshold": threshold,
        "rule": params.get("rule", "balanced"),
        "how": how,
        "ambiguity_threshold": float(train_params["ambiguity_threshold"]),
        "validation_in_scope_accuracy": round(at["in_scope_accuracy"], 4),
        "validation_oos_recall": round(at["oos_recall"], 4) if at["n_oos"] else None,
        "validation_n_in_scope": at["n_in_scope"],
        "validation_n_oos": at["n_oos"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-template", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="training split minus validation")
    parser.add_argument("--validation", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="folder for the validation model")
    parser.add_argument(
        "--encoder",
        type=Path,
        help="encoder folder (finetune_encoder's, trained on --train only); else the config's",
    )
    parser.add_argument("--out", type=Path, required=True, help="the chosen threshold (JSON)")
    parser.add_argument("--curve", type=Path, required=True, help="threshold curve (CSV; PNG beside it)")
    args = parser.parse_args(argv)
    params, train_params = load_params("oos"), load_params("train_nlu")
    ambiguity = float(train_params["ambiguity_threshold"])
    with stage_run("select_threshold_nlu", {"oos": params, "config": train_params["config"]}):
        import mlflow

        thresholds = (float(train_params["fallback_threshold"]), ambiguity)
        try:
            predictions, info = validation_predictions(
                args.config_template, args.train, args.validation, args.work, thresholds, args.encoder
            )
        except RasaError as exc:
            print(f"select_threshold_nlu: {exc}", file=sys.stderr)
            return 1
        rows = read_predictions(predictions)
        points = oos.curve(oos.scored(rows), float(params.get("step", 0.01)), ambiguity)
        # how far the confidences the threshold is chosen on are from the accuracy (nlu.calibration)
        calibration = calibration_report(rows)
        choice = select(points, params, train_params) | {
            "validation_train_seconds": info["train_seconds"],
            "validation_nll": calibration["nll"],
            "validation_ece": calibration["ece"],
            "validation_mean_confidence": calibration["mean_confidence"],
            "validation_top1_accuracy": calibration["accuracy"],
        }
        write_json(args.out, choice)
        oos.write_curve_csv(points, args.curve)
        png = oos.plot_curve(
            {"validation": points},
            choice["threshold"],
            args.curve.with_suffix(".png"),
            "Out-of-scope threshold (validation split)",
        )
        log_metrics("select_threshold_nlu", choice)
        mlflow.log_artifact(str(args.curve))
        mlflow.log_artifact(str(png))
    print(
        f"select_threshold_nlu: threshold {choice['threshold']} ({choice['how']}); validation confidences: "
        f"ECE {choice['validation_ece']}, mean {choice['validation_mean_confidence']} against top-1 accuracy "
        f"{choice['validation_top1_accuracy']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
