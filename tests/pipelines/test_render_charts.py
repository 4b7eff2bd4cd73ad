"""DVC stage ``render_charts`` (CLI): every chart of the results as SVG and PNG; bad input: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.analytics.charts import CHARTS
from pipelines.render_charts import main
from tests.app.analytics.test_charts import write_results


def args(paths, out: Path) -> list[str]:
    return ["--nlu-results", str(paths.nlu), "--rag-results", str(paths.rag), "--bot-results", str(paths.bot),
            "--policy-results", str(paths.policies), "--out", str(out)]  # fmt: skip


@pytest.fixture(autouse=True)
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stage's MLflow run in a store of the test's own (params.yaml of the repository: base)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("base: {mlflow_experiment: switchboard-test}\n")
    return tmp_path / "mlflow.db"


def test_the_stage_writes_every_chart_and_drops_stale_ones(tmp_path: Path, capsys) -> None:
    paths = write_results(tmp_path)
    out = tmp_path / "reports" / "charts"
    out.mkdir(parents=True)
    (out / "gone.svg").write_text("<svg/>")
    assert main(args(paths, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{c.name}.{x}" for c in CHARTS for x in ("png", "svg")
    )
    assert f"render_charts: {len(CHARTS)} charts -> {out}" in capsys.readouterr().out

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("switchboard-test").experiment_id])
    assert run.data.tags["stage"] == "render_charts" and run.data.metrics == {
        "render_charts/charts": len(CHARTS)
    }
    logged = [a.path for a in client.list_artifacts(run.info.run_id, "charts")]
    assert "charts/threshold_curve.svg" in logged and len(logged) == 2 * len(CHARTS)


def test_a_missing_file_is_named_and_an_unreadable_one_exits_2(tmp_path: Path, capsys) -> None:
    paths = write_results(tmp_path)
    (paths.bot / "turns.csv").unlink()
    assert main(args(paths, tmp_path / "charts")) == 0
    assert f"skipped handler_confusion: {paths.bot / 'turns.csv'} does not exist" in capsys.readouterr().err
    (paths.rag / "retrievers.csv").write_text("retriever\ndense\n")
    assert main(args(paths, tmp_path / "charts")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("render_charts: error: ") and "retrievers.csv" in err and "\n" not in err
