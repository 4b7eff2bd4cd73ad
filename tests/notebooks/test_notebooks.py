"""Every notebook's code runs top to bottom on the outputs of a real pipeline run (no Jupyter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def code_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_pipeline_outputs(notebook, pipeline_run, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_ROOT", str(pipeline_run.root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(pipeline_run.root)
    namespace: dict = {"__name__": "__notebook__"}
    exec(compile(code_of(notebook), str(notebook), "exec"), namespace)  # noqa: S102
    CHECKS[notebook.name](namespace)


def _pipeline_results(ns: dict) -> None:
    assert ns["metrics"]["n_test"] > 0
    assert len(ns["rows"]) == ns["metrics"]["n_test"]


def _routing_what_if(ns: dict) -> None:
    """Built on the turn records of evaluate_bot: the same turns, the same figures."""
    assert len(ns["records"]) == ns["bot"]["all"]["turns"] > 0
    assert abs(ns["by_handler"]["share"].sum() - 1) < 1e-9
    assert len(ns["table"]) == len(ns["policies"]["rows"]) == 8
    free = ns["what_if"][ns["what_if"]["escalated"] == 0]
    assert (free["cost per 1000"] == 0).all()  # nothing sent to an LLM tier costs nothing


CHECKS = {"01_pipeline_results.ipynb": _pipeline_results, "02_routing_cost_what_if.ipynb": _routing_what_if}


def test_there_is_a_notebook():
    assert NOTEBOOKS
