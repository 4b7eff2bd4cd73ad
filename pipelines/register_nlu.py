"""Stage register_nlu: register the trained model in MLflow, gate it against the champion, and write the
champion's model where the bot serves it from.

The Rasa tarball logged by train_nlu becomes a new version of ``register_nlu.model_name`` (its source is
the run's artifact) and gets the alias ``challenger``. It is promoted to ``champion`` when no gate metric
(``register_nlu.gate_metrics``, from evaluate_nlu) is worse than the champion's by more than
``register_nlu.tolerance``; the first version becomes champion. The champion's artifact is then copied
to ``--serve`` (``nlu/serving/model.tar.gz``, what ``make run`` serves), so a model that fails the gate
is never served to everyone. The ``challenger`` (always the newest version; the same model as the champion
once promoted) is copied to ``--challenger``: the launcher serves it to the canary share of users
(flag ``challenger_percent``) when it differs from the champion.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipelines._common import load_params, stage_run, tracking_uri, write_json

CHAMPION, CHALLENGER = "champion", "challenger"


def gate(
    challenger: dict[str, float], champion: dict[str, float] | None, metrics: list[str], tolerance: float
) -> tuple[bool, list[str]]:
    """(promote?, reasons). A metric missing on either side is not compared (said in the reasons)."""
    if champion is None:
        return True, ["no champion yet: the first model becomes champion"]
    promote, reasons = True, []
    for name in metrics:
        new, old = challenger.get(name), champion.get(name)
        if new is None or old is None:
            reasons.append(f"{name}: not compared (challenger {new}, champion {old})")
            continue
        ok = new >= old - tolerance
        promote &= ok
        reasons.append(
            f"{name}: challenger {new:.4f} vs champion {old:.4f} "
            f"({'ok' if ok else 'worse by more than'} tolerance {tolerance})"
        )
    return promote, reasons


def _version_metrics(version: Any, names: list[str]) -> dict[str, float]:
    return {n: float(version.tags[f"metric.{n}"]) for n in names if f"metric.{n}" in version.tags}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-info", type=Path, required=True, help="train_nlu's mlflow_run.json")
    parser.add_argument("--metrics", type=Path, required=True, help="evaluate_nlu's metrics.json")
    parser.add_argument("--serve", type=Path, required=True, help="where the champion's model is written")
    parser.add_argument(
        "--challenger",
        type=Path,
        required=True,
        help="where the newest version (the canary's model) is written",
    )
    parser.add_argument("--out", type=Path, required=True, help="registry decision (JSON)")
    args = parser.parse_args(argv)
    params = load_params("register_nlu")
    name = params.get("model_name", "switchboard-nlu")
    names = list(params.get("gate_metrics", ["intent_macro_f1", "oos_recall"]))
    tolerance = float(params.get("tolerance", 0.01))
    run_info = json.loads(args.run_info.read_text())
    evaluation = json.loads(args.metrics.read_text())
    challenger_metrics = {n: float(evaluation[n]) for n in names if n in evaluation}

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
        try:
            champion = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            champion = None
        version = client.create_model_version(
            name,
            source=run_info["artifact_uri"],
            run_id=run_info["run_id"],
            tags={f"metric.{k}": str(v) for k, v in challenger_metrics.items()}
            | {"artifact_path": run_info["artifact_path"]},
        )
        client.set_registered_model_alias(name, CHALLENGER, version.version)
        promote, reasons = gate(
            challenger_metrics, _version_metrics(champion, names) if champion else None, names, tolerance
        )
        if promote:
            client.set_registered_model_alias(name, CHAMPION, version.version)
            champion = client.get_model_version(name, version.version)
        assert champion is not None
        client.set_model_version_tag(name, version.version, "gate", "promoted" if promote else "rejected")
        newest = client.get_model_version(name, version.version)
        for served, destination in ((champion, args.serve), (newest, args.challenger)):
            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(
                    run_id=served.run_id,
                    artifact_path=served.tags["artifact_path"],
                    dst_path=tmp,
                    tracking_uri=tracking_uri(),
                )
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, destination)
        decision = {
            "model_name": name,
            "version": int(version.version),
            "promoted": promote,
            "champion_version": int(champion.version),
            "reasons": reasons,
            "challenger_metrics": challenger_metrics,
            "tolerance": tolerance,
        }
        mlflow.log_metrics(
            {
                "promoted": int(promote),
                "champion_version": int(champion.version),
                "version": int(version.version),
            }
        )
        mlflow.set_tag("gate", "; ".join(reasons))
    write_json(args.out, decision)
    print(
        f"register_nlu: {name} v{version.version} "
        f"{'promoted to champion' if promote else 'stays challenger'}; serving v{champion.version}"
        f" ({'; '.join(reasons)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
