"""``dvc exp run --queue`` + ``dvc queue start -j 1``: a queued experiment runs in a temporary copy under
.dvc/tmp/exps that has neither ``.venv-rasa`` nor ``../shared``; its stages find the project's (DVC_ROOT, through
the settings) and log to the project's MLflow store.

One cheap stage, validate_nlu (it runs Rasa from ``.venv-rasa``), in a fresh copy of the project laid out like a
checkout (``.venv-rasa`` beside it): no built pipeline needed, so it runs wherever the Rasa environment exists.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, copy_project, guarded_env

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.email=tests@switchboard.invalid", "-c", "user.name=tests"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    rasa = ROOT / ".venv-rasa" / "bin" / "python"
    if not rasa.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{rasa} is missing: `make setup` makes it (required under CI)")
        pytest.skip(f"{rasa} is missing: `make setup` makes it")
    root = copy_project(tmp_path / "project")
    # a project whose pipeline never ran (the lock names outputs this copy's cache does not have)
    subprocess.run([*GIT, "rm", "-q", "dvc.lock"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "no outputs yet"], cwd=root, check=True)
    (root / ".venv-rasa").symlink_to(ROOT / ".venv-rasa")  # as in a checkout (git-ignored, not copied)
    return root


def dvc(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["dvc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done.stdout


def test_a_queued_experiment_runs_and_shows_in_the_table(project: Path) -> None:
    env = guarded_env()
    for name in ("SWITCHBOARD_RASA_PYTHON", "SWITCHBOARD_DATASETS", "DVC_ROOT", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)  # the stages must find them on their own
    dvc(project, env, "exp", "run", "--queue", "--name", "queued-check", "-S", "validate_nlu.fail_on_warnings=false",
        "validate_nlu")  # fmt: skip
    try:
        dvc(project, env, "queue", "start", "-j", "1")
        deadline, status = time.monotonic() + 600, ""
        while time.monotonic() < deadline:
            status = dvc(project, env, "queue", "status")
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(3)
        logs = subprocess.run(["dvc", "queue", "logs", "queued-check"], cwd=project, env=env, capture_output=True,
                              text=True, timeout=60).stdout  # fmt: skip
        assert "Success" in status, f"{status}\n{logs[-3000:]}"
    finally:
        dvc(project, env, "queue", "stop")
        for _ in range(60):  # the worker goes once idle
            if "0 active, 0 idle" in dvc(project, env, "queue", "status"):
                break
            time.sleep(1)

    table = dvc(project, env, "exp", "show", "--csv", "--drop", ".*", "--keep",
                "Experiment|State|validate_nlu.fail_on_warnings|warnings")  # fmt: skip
    rows = {row["Experiment"]: row for row in csv.DictReader(io.StringIO(table))}
    assert rows["queued-check"]["State"] == "Success"
    assert rows["queued-check"]["validate_nlu.fail_on_warnings"] == "False"
    # the experiment's metrics are in the table: metrics are DVC-cached, so an experiment's commit has them
    # (a git-ignored `cache: false` metrics file shows as "!")
    assert int(rows["queued-check"]["warnings"]) >= 0

    import mlflow

    # the temporary copy is gone; its stage's run is in the project's store
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("switchboard").experiment_id])
    assert run.data.tags["stage"] == "validate_nlu" and "validate_nlu/warnings" in run.data.metrics
