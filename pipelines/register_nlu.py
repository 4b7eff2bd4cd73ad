"""Stage register_nlu: register the trained model in MLflow as the newest version, ``challenger``.

The Rasa tarball logged by train_nlu becomes a new version of ``register_nlu.model_name`` (its source is
the run's artifact), tagged with its NLU figures (from evaluate_nlu), and gets the alias ``challenger``; its
artifact is copied to ``--challenger`` (``nlu/serving/challenger.tar.gz``), which the launcher serves to the
canary share of users (flag ``challenger_percent``). Nothing is promoted here: ``evaluate_bot`` plays the
conversation test set through the served stack with this model first, and ``promote_nlu`` decides, from
both evaluations, whether it becomes the ``champion`` everyone is served.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipelines._common import load_params, log_metrics, stage_run, tracking_uri, write_json

CHAMPION, CHALLENGER = "champion", "challenger"
NLU_TAG = "metric."  # model version tags of the NLU figures: metric.intent_macro_f1, ...
BOT_TAG = "bot."  # ... and of the bot-level figures (promote_nlu writes them)


def download(client: Any, version: Any, destination: Path) -> None:
    """Copy a registered version's model tarball to ``destination``."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=version.run_id,
            artifact_path=version.tags["artifact_path"],
            dst_path=tmp,
            tracking_uri=tracking_uri(),
        )
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, destination)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-info", type=Path, required=True, help="train_nlu's mlflow_run.json")
    parser.add_argument("--metrics", type=Path, required=True, help="evaluate_nlu's metrics.json")
    parser.add_argument(
        "--challenger", type=Path, required=True, help="where the new version (the canary's model) is written"
    )
    parser.add_argument("--out", type=Path, required=True, help="the registered version (JSON)")
    args = parser.parse_args(argv)
    params = load_params("register_nlu")
    name = params.get("model_name", "switchboard-nlu")
    run_info = json.loads(args.run_info.read_text())
    evaluation = json.loads(args.metrics.read_text())
    nlu_metrics = {k: float(v) for k, v in evaluation.items() if isinstance(v, int | float)}

    import mlflow
    from mlflow.exceptions import MlflowException

    with stage_run("register_nlu", params):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri())
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(
                name,
                description="Switchboard's Rasa model (NLU + dialogue), "
                "as a tarball `rasa run --model` serves.",
            )
        version = client.create_model_version(
            name,
            source=run_info["artifact_uri"],
            run_id=run_info["run_id"],
            tags={f"{NLU_TAG}{k}": str(v) for k, v in nlu_metrics.items()}
            | {"artifact_path": run_info["artifact_path"]},
        )
        client.set_registered_model_alias(name, CHALLENGER, version.version)
        download(client, client.get_model_version(name, version.version), args.challenger)
        log_metrics("register_nlu", {"version": int(version.version)})
    write_json(args.out, {"model_name": name, "version": int(version.version), "run_id": run_info["run_id"]})
    print(f"register_nlu: {name} v{version.version} registered as {CHALLENGER}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
