"""Makefile targets that start something: ``make mlflow`` serves the MLflow UI on loopback over the store the
pipeline stages log to, and Ctrl-C stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, guarded_env

pytestmark = pytest.mark.slow


def test_make_mlflow_serves_the_projects_runs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import mlflow

    from pipelines._common import log_metrics

    # a run as a stage logs it, in the store of the project `make` runs in (its mlflow.db)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment(
        "switchboard", artifact_location=(tmp_path / "mlartifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment, run_name="evaluate_nlu"):
        log_metrics("evaluate_nlu", {"intent_macro_f1": 0.91})
    port = free_port()
    env = guarded_env()
    env.pop("DVC_ROOT", None)
    make = subprocess.Popen(
        ["make", "-f", str(ROOT / "Makefile"), "-o", "setup", "mlflow", f"MLFLOW_PORT={port}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: Ctrl-C in a terminal signals the whole group
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/runs/search"
        body = json.dumps({"experiment_ids": [experiment]}).encode()
        deadline, runs = time.monotonic() + 120, None
        while runs is None and time.monotonic() < deadline and make.poll() is None:
            try:
                request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    runs = json.load(response)["runs"]
            except OSError:
                time.sleep(1)
        assert runs is not None, (
            f"the UI did not answer: {make.stdout.read() if make.poll() is not None else ''}"
        )
        [run] = runs
        assert run["data"]["metrics"] == [
            {"key": "evaluate_nlu/intent_macro_f1", "value": 0.91, "timestamp": run["data"]["metrics"][0]["timestamp"],
             "step": 0}
        ]  # fmt: skip
        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=60)
        output = make.stdout.read()
        assert f"MLflow UI: http://127.0.0.1:{port} (store sqlite:///{tmp_path / 'mlflow.db'}" in output
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
