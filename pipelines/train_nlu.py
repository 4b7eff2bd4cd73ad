"""Stage train_nlu: render the served config (threshold chosen by select_threshold_nlu), train the Rasa
model on the training split, log it to MLflow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nlu.rasa_runner import RasaError
from nlu.training import render_config, train
from pipelines._common import load_params, log_metrics, stage_run, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config-template", type=Path, required=True, help="a file under nlu/configs/")
    parser.add_argument("--config-out", type=Path, required=True, help="rendered training config")
    parser.add_argument(
        "--threshold",
        type=Path,
        help="select_threshold_nlu's choice (JSON); without it, train_nlu.fallback_threshold",
    )
    parser.add_argument("--encoder", type=Path, help="encoder folder (finetune_encoder's); else the config's")
    parser.add_argument("--domain", type=Path, required=True)
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="NLU split, rules, stories")
    parser.add_argument("--out", type=Path, required=True, help="model folder")
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params("train_nlu")
    threshold = float(params["fallback_threshold"])
    if args.threshold:
        threshold = float(json.loads(args.threshold.read_text())["threshold"])
    with stage_run("train_nlu", params) as run:
        import mlflow

        mlflow.log_param("served_threshold", threshold)
        render_config(
            args.config_template,
            args.config_out,
            threshold,
            float(params["ambiguity_threshold"]),
            args.encoder,
        )
        try:
            model, seconds = train(args.config_out, args.domain, args.data, args.out)
        except RasaError as exc:
            print(f"train_nlu: {exc}", file=sys.stderr)
            return 1
        metrics = {
            "train_seconds": round(seconds, 2),
            "model_mb": round(model.stat().st_size / 2**20, 2),
            "served_threshold": threshold,
        }
        log_metrics("train_nlu", metrics)
        mlflow.log_artifact(str(args.config_out), "config")
        mlflow.log_artifact(str(model), "rasa_model")
        # which run holds the model artifact: register_nlu registers that one
        write_json(
            args.out / "mlflow_run.json",
            {
                "run_id": run.info.run_id,
                "artifact_path": f"rasa_model/{model.name}",
                "artifact_uri": f"{mlflow.get_artifact_uri('rasa_model')}/{model.name}",
            },
        )
    write_json(args.metrics, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
