"""The evaluation charts (app/analytics/charts.py): drawn from small result files as the pipeline writes them,
saved as SVG and PNG without a browser, and the offline template for ``dvc plots show``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.analytics import charts
from app.analytics.results import ResultPaths, ResultUnreadable
from tests import dvc_yaml

PNG = b"\x89PNG\r\n\x1a\n"


def write_results(root: Path) -> ResultPaths:
    """One small file per chart source, with the columns the stages write."""
    paths = ResultPaths.from_root(root)
    curve = "threshold,in_scope_accuracy,oos_recall,fallback_rate\n0.2,0.95,0.4,0.1\n0.4,0.9,0.8,0.2\n"
    for folder in (paths.nlu, paths.nlu / "benchmark", paths.rag, paths.bot, paths.policies):
        folder.mkdir(parents=True, exist_ok=True)
    (paths.nlu / "threshold.json").write_text(json.dumps({"threshold": 0.4}))
    for path in (paths.nlu / "threshold_curve.csv", paths.nlu / "threshold_curve_test.csv",
                 paths.nlu / "benchmark" / "threshold_curve_test.csv"):  # fmt: skip
        path.write_text(curve)
    (paths.nlu / "predictions.csv").write_text(
        "actual,predicted\ngreet,greet\ngreet,goodbye\ngoodbye,goodbye\n"
    )
    (paths.rag / "hit_at_k.csv").write_text("k,hit_rate\n1,0.6\n2,0.8\n")
    (paths.rag / "idk_curve.csv").write_text("cut_off,precision,recall\n0.2,0.9,0.5\n0.3,0.8,0.7\n")
    (paths.rag / "retrievers.csv").write_text("retriever,metric,value\ndense,mrr,0.7\nbm25,mrr,0.6\n")
    (paths.bot / "turns.csv").write_text("expected_handler,handler\nskill,skill\nknowledge,skill\n")
    rows = [
        {"policy": "tiered", "task_completion": 0.8, "cost_per_1000_conversations": 0.0, "tiers_used": {}}
    ]
    (paths.policies / "policies.json").write_text(json.dumps({"rows": rows}))
    return paths


def test_every_chart_is_written_as_svg_and_png(tmp_path: Path) -> None:
    paths = write_results(tmp_path)
    written = charts.render_all(paths, tmp_path / "charts")
    assert sorted(written) == sorted(chart.name for chart in charts.CHARTS)
    for svg, png in written.values():
        assert svg.read_text().lstrip().startswith("<svg") and png.read_bytes()[:8] == PNG
    curve = (tmp_path / "charts" / "threshold_curve.svg").read_text()
    assert "Out-of-scope threshold on the validation split" in curve and "oos_recall" in curve
    assert "greet" in (tmp_path / "charts" / "intent_confusion.svg").read_text()


def test_every_csv_plot_of_dvc_yaml_has_a_chart() -> None:
    """dvc.yaml's plots over CSV files, each drawn by one of CHARTS (the PNGs it lists are images already)."""
    spec = dvc_yaml.spec()
    paths = ResultPaths.from_root(Path("."))
    drawn = {str(chart.source(paths)) for chart in charts.CHARTS}
    declared = [next(iter(p)) if isinstance(p, dict) else p for p in spec["plots"]]
    for stage in spec["stages"].values():
        declared += [next(iter(p)) for p in stage.get("plots") or []]
    csvs = [dvc_yaml.resolve(p) for p in declared]
    assert [p for p in csvs if p.endswith(".csv") and p not in drawn] == []


def test_a_missing_file_draws_nothing_and_an_unreadable_one_says_which(tmp_path: Path) -> None:
    paths = ResultPaths.from_root(tmp_path)
    assert charts.render_all(paths, tmp_path / "charts") == {}
    paths.rag.mkdir(parents=True)
    (paths.rag / "hit_at_k.csv").write_text("k,recall\n1,0.5\n")
    with pytest.raises(ResultUnreadable, match="hit_at_k.csv cannot be read: missing columns"):
        charts.draw("hit_at_k", paths)


def test_the_offline_template_inlines_the_vega_scripts() -> None:
    page = charts.offline_template()
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page  # where DVC would put its CDN links
    assert re.findall(r"<script[^>]*\bsrc=", page) == []
    assert "window.vegaEmbed" in page and page.count("</script") == 1
