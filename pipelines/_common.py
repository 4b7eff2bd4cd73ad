"""What every stage shares: params, JSON output, and one MLflow run per stage."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
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


def tracking_uri() -> str:
    """MLflow tracking store: ``MLFLOW_TRACKING_URI`` (environment or ``.env``) or SQLite ``mlflow.db`` in the
    working directory."""
    return get_settings().environ().get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


@contextmanager
def stage_run(stage: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
    """Open an MLflow run for one pipeline stage, tagged with the stage name and git commit.

    Artifacts go to ``mlartifacts/`` next to the tracking database (git-ignored).
    """
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    experiment = base_params().mlflow_experiment
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(experiment, artifact_location=Path("mlartifacts").resolve().as_uri())
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
