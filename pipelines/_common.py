"""What every stage shares: params, JSON output, and one MLflow run per stage."""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.settings import BaseParams, ServeParams, get_settings, read_params, read_section

# The params file DVC tracks: the stage's working directory (the project root, or its copy in a test run).
# Not Settings.params_file: SWITCHBOARD_PARAMS_FILE points the running bot elsewhere, never a stage.
PARAMS_FILE = Path("params.yaml")


def load_params(section: str | None = None, path: Path = PARAMS_FILE) -> dict[str, Any]:
    """params.yaml (or one section of it; empty when absent) through the settings' reader, a copy."""
    return read_params(path, section)


def load_section(name: str, model: Any, path: Path = PARAMS_FILE) -> Any:
    """One section validated as ``model`` (a pydantic model, or a callable taking the mapping), through the
    settings' reader: the stage reads a section with the same model the running bot does."""
    return read_section(path, name, model)


def base_params(path: Path = PARAMS_FILE) -> BaseParams:
    """The ``base`` section, typed (seed, tenant, MLflow experiment; their defaults are written there)."""
    return read_section(path, "base", BaseParams)


def serve_params(path: Path = PARAMS_FILE) -> ServeParams:
    """The ``serve`` section, typed (what the running bot uses; the evaluations use the same values)."""
    return read_section(path, "serve", ServeParams)


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as pretty JSON, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def git_commit() -> str:
    """The current git commit, or 'unknown' outside a repository."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def project_dir() -> Path:
    """The DVC project a stage belongs to: ``DVC_ROOT``, which DVC sets for every stage (a queued experiment,
    which runs in a temporary copy under ``.dvc/tmp/exps``, gets the project it was queued in), else the working
    directory."""
    return Path(get_settings().environ().get("DVC_ROOT") or ".").resolve()


def tracking_uri() -> str:
    """MLflow tracking store: ``MLFLOW_TRACKING_URI`` (environment or ``.env``) or SQLite ``mlflow.db`` in the
    project (:func:`project_dir`: the runs of queued experiments land in the project's store too)."""
    return get_settings().environ().get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_dir() / 'mlflow.db'}"


#: MLflow metric names: ``<stage>/<key path>``, the key path being the figure's place in the stage's metrics
#: file with nested keys joined by dots (``evaluate_bot/frozen.task_completion``). The same figure has the same
#: name in every run of its stage, whatever the commit, and the MLflow UI groups each stage's charts.
METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]*/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def metric_names(stage: str, metrics: Mapping[str, Any], skip: Collection[str] = ()) -> dict[str, float]:
    """The numeric figures of ``metrics`` (nested mappings flattened, keys in ``skip`` left out at any depth)
    under :data:`METRIC_NAME`'s scheme; text, booleans and undefined figures (None, NaN) are left out. A key
    MLflow cannot take (``+``, spaces) is a ``ValueError``: rename it in the metrics the stage writes."""
    named: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                if key not in skip:
                    walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
            name = f"{stage}/{prefix}"
            if not METRIC_NAME.match(name):
                raise ValueError(f"MLflow metric name {name!r} does not follow <stage>/<key.path>")
            named[name] = float(value)

    walk("", metrics)
    return named


def log_metrics(
    stage: str, metrics: Mapping[str, Any], step: int | None = None, skip: Collection[str] = ()
) -> dict[str, float]:
    """Log ``metrics`` to the active MLflow run under their scheme names (:func:`metric_names`); the names.
    Every stage logs its figures through here (tests/pipelines/test_metric_names.py checks it)."""
    import mlflow

    named = metric_names(stage, metrics, skip)
    mlflow.log_metrics(named, step=step)
    return named


@contextmanager
def stage_run(stage: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
    """Open an MLflow run for one pipeline stage, tagged with the stage name and git commit.

    Artifacts go to ``mlartifacts/`` in the project (:func:`project_dir`), next to the default tracking database
    (git-ignored).
    Metrics: :func:`log_metrics`, so every stage names them the same way.
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = base_params().mlflow_experiment
    if mlflow.get_experiment_by_name(experiment) is None:
        artifacts = project_dir() / "mlartifacts"
        mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=stage) as run:
        mlflow.set_tags({"stage": stage, "git_commit": git_commit()})
        if params:
            mlflow.log_params(_flatten(params))
        yield run


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
