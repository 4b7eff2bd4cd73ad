"""The evaluation charts, defined once: the evaluation page shows them, the ``render_charts`` stage writes them
as SVG and PNG files that open anywhere (no browser, no CDN), and :func:`offline_template` is the page
``dvc plots show`` fills with the same Vega libraries inlined.

Each chart is a Vega-Lite spec built with Altair from a result file of the pipeline (``app.analytics.results``
reads them); every plot ``dvc.yaml`` declares over a CSV has its chart here (:data:`CHARTS` names the file).
Static images come from vl-convert (Vega and Vega-Lite compiled into a Python wheel, pinned in
requirements.lock): it renders without a browser, and its JavaScript bundle is what the offline template inlines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd

from app.analytics.results import ResultPaths, per_intent_accuracy, read_csv, read_json

CURVE_LINES = ["in_scope_accuracy", "oos_recall"]
STATIC_WIDTH, STATIC_HEIGHT = (
    420,
    300,
)  # the image files' plot area (the page stretches charts to its columns)
PNG_SCALE = 2  # PNG pixels per SVG unit: sharp on high-density screens and in slides


def threshold_curve(curve: pd.DataFrame, threshold: float | None, title: str) -> alt.LayerChart | alt.Chart:
    """In-scope accuracy and OOS recall (and the fallback rate when present) against the threshold; a dashed
    rule at the chosen one."""
    lines = [c for c in [*CURVE_LINES, "fallback_rate"] if c in curve.columns]
    long = curve.melt(id_vars="threshold", value_vars=lines, var_name="metric", value_name="value")
    chart = alt.Chart(long, title=title).mark_line().encode(
        x=alt.X("threshold:Q", title="FallbackClassifier threshold"), y=alt.Y("value:Q", title=None),
        color=alt.Color("metric:N", title=None), tooltip=["threshold:Q", "metric:N", "value:Q"],
    )  # fmt: skip
    if threshold is None:
        return chart
    rule = (
        alt.Chart(pd.DataFrame({"threshold": [threshold]}))
        .mark_rule(strokeDash=[4, 4])
        .encode(x="threshold:Q")
    )
    return chart + rule


def intent_accuracy(predictions: pd.DataFrame) -> alt.Chart:
    """Accuracy per intent of the held-out split, as served (after the out-of-scope threshold)."""
    accuracy = per_intent_accuracy(predictions)
    return alt.Chart(accuracy, title="Accuracy per intent (served, after the threshold)").mark_bar().encode(
        x=alt.X("accuracy:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("actual:N", sort="x", title=None),
        tooltip=["actual:N", alt.Tooltip("accuracy:Q", format=".1%"), "support:Q"],
    )  # fmt: skip


def confusion(table: pd.DataFrame, x: str, y: str, title: str, x_title: str, y_title: str) -> alt.Chart:
    """Rows counted per (``y``, ``x``) pair as a heat map: DVC's ``confusion`` template, as a chart."""
    counts = table.groupby([y, x]).size().rename("count").reset_index()
    return alt.Chart(counts, title=title).mark_rect().encode(
        x=alt.X(f"{x}:N", title=x_title), y=alt.Y(f"{y}:N", title=y_title), color="count:Q",
        tooltip=[f"{y}:N", f"{x}:N", "count:Q"],
    )  # fmt: skip


def hit_at_k(hits: pd.DataFrame) -> alt.Chart:
    return alt.Chart(hits, title="Gold questions answered in the top k").mark_line(point=True).encode(
        x=alt.X("k:O"), y=alt.Y("hit_rate:Q", scale=alt.Scale(domain=[0, 1]))
    )  # fmt: skip


def idk_curve(idk: pd.DataFrame) -> alt.Chart:
    return alt.Chart(idk, title="\"I don't know\": precision against recall").mark_line(point=True).encode(
        x=alt.X("recall:Q"), y=alt.Y("precision:Q"), order="recall:Q"
    )  # fmt: skip


def retrievers(table: pd.DataFrame) -> alt.Chart:
    return alt.Chart(table, title="Retrievers side by side").mark_bar().encode(
        x=alt.X("metric:N", title=None), xOffset="retriever:N", y=alt.Y("value:Q"),
        color="retriever:N", tooltip=["retriever:N", "metric:N", "value:Q"],
    )  # fmt: skip


def policies(rows: pd.DataFrame) -> alt.Chart:
    """Each tier policy's cost against its task completion (``policies.json`` rows)."""
    rows = rows.drop(columns=["tiers_used"], errors="ignore")
    return alt.Chart(rows, title="Cost against task completion").mark_point(filled=True, size=80).encode(
        x=alt.X("cost_per_1000_conversations:Q", title="cost per 1000 conversations"),
        y=alt.Y("task_completion:Q", title="task completion"), tooltip=list(rows.columns[:6]),
    )  # fmt: skip


@dataclass(frozen=True)
class ChartSource:
    """One chart of the pipeline's results: the file it is drawn from and how."""

    name: str  # the image files' name (``<name>.svg``, ``<name>.png``)
    source: Callable[[ResultPaths], Path]
    draw: Callable[[ResultPaths, Path], alt.TopLevelMixin | None]  # None when the file is absent


def _threshold(paths: ResultPaths) -> float | None:
    chosen = read_json(paths.nlu / "threshold.json")
    return chosen.get("threshold") if chosen else None


def _curve(title: str) -> Callable[[ResultPaths, Path], Any]:
    def draw(paths: ResultPaths, path: Path) -> Any:
        curve = read_csv(path, ("threshold", *CURVE_LINES))
        return None if curve is None else threshold_curve(curve, _threshold(paths), title)

    return draw


def _csv(
    columns: tuple[str, ...], build: Callable[[pd.DataFrame], Any]
) -> Callable[[ResultPaths, Path], Any]:
    def draw(paths: ResultPaths, path: Path) -> Any:
        table = read_csv(path, columns)
        return None if table is None else build(table)

    return draw


def _confusion(x: str, y: str, title: str, x_title: str, y_title: str) -> Callable[[ResultPaths, Path], Any]:
    return _csv((y, x), lambda table: confusion(table, x, y, title, x_title, y_title))


def _policies(paths: ResultPaths, path: Path) -> Any:
    table = read_json(path)
    rows = pd.DataFrame((table or {}).get("rows") or [])
    return None if rows.empty else policies(rows)


#: Every chart of the pipeline's results: the plots dvc.yaml declares over CSV files, and the page's others.
CHARTS: tuple[ChartSource, ...] = (
    ChartSource(
        "threshold_curve",
        lambda p: p.nlu / "threshold_curve.csv",
        _curve("Out-of-scope threshold on the validation split (where it is chosen)"),
    ),
    ChartSource(
        "threshold_curve_test",
        lambda p: p.nlu / "threshold_curve_test.csv",
        _curve("Out-of-scope threshold on the held-out test split"),
    ),
    ChartSource(
        "benchmark_threshold_curve_test",
        lambda p: p.nlu / "benchmark" / "threshold_curve_test.csv",
        _curve("benchmark_nlu threshold curve (test split of the chosen dataset)"),
    ),
    ChartSource(
        "intent_confusion",
        lambda p: p.nlu / "predictions.csv",
        _confusion("predicted", "actual", "Intent confusion (held-out split)", "predicted", "actual"),
    ),
    ChartSource(
        "intent_accuracy", lambda p: p.nlu / "predictions.csv", _csv(("actual", "predicted"), intent_accuracy)
    ),
    ChartSource("hit_at_k", lambda p: p.rag / "hit_at_k.csv", _csv(("k", "hit_rate"), hit_at_k)),
    ChartSource("idk_curve", lambda p: p.rag / "idk_curve.csv", _csv(("precision", "recall"), idk_curve)),
    ChartSource(
        "retrievers", lambda p: p.rag / "retrievers.csv", _csv(("retriever", "metric", "value"), retrievers)
    ),
    ChartSource(
        "handler_confusion",
        lambda p: p.bot / "turns.csv",
        _confusion("handler", "expected_handler", "Expected vs actual handler", "actual", "expected"),
    ),
    ChartSource("policies", lambda p: p.policies / "policies.json", _policies),
)


def draw(name: str, paths: ResultPaths) -> alt.TopLevelMixin | None:
    """The chart ``name`` of :data:`CHARTS` over the results in ``paths``; None when its file is absent."""
    chart = next(c for c in CHARTS if c.name == name)
    return chart.draw(paths, chart.source(paths))


def save(chart: alt.TopLevelMixin, stem: Path) -> list[Path]:
    """Write ``chart`` as ``<stem>.svg`` and ``<stem>.png`` (vl-convert: no browser, no network); the files."""
    import vl_convert as vlc

    spec = chart.properties(width=STATIC_WIDTH, height=STATIC_HEIGHT).to_json()
    stem.parent.mkdir(parents=True, exist_ok=True)
    svg, png = stem.with_suffix(".svg"), stem.with_suffix(".png")
    svg.write_text(vlc.vegalite_to_svg(spec))
    png.write_bytes(vlc.vegalite_to_png(spec, scale=PNG_SCALE))
    return [svg, png]


def render_all(paths: ResultPaths, out: Path) -> dict[str, list[Path]]:
    """Every chart of :data:`CHARTS` whose result file exists, written to ``out``; what was written, by name."""
    written: dict[str, list[Path]] = {}
    for source in CHARTS:
        chart = source.draw(paths, source.source(paths))
        if chart is not None:
            written[source.name] = save(chart, out / source.name)
    return written


#: The Vega-Lite major version of DVC's plot templates (dvc-render's ``$schema``): the bundle the offline
#: template inlines compiles their specs with the newest 5.x vl-convert ships.
DVC_VEGA_LITE = "5.21"

OFFLINE_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
    <!-- Vega {vega}, Vega-Lite {vega_lite}, Vega-Embed {vega_embed}: the JavaScript bundle of vl-convert-python
         {vl_convert} (requirements.lock), inlined so the page needs no network. Written by `dvc repro
         plots_template` (pipelines/plots_template.py); DVC's own CDN scripts are not used: this template has no
         scripts placeholder. -->
    <script type="text/javascript">
(function () {{
{bundle}
}})();
    </script>
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def offline_template() -> str:
    """The HTML template for ``dvc plots show --html-template``: DVC's page with the Vega, Vega-Lite and
    Vega-Embed scripts inlined (vl-convert's bundle, which sets ``window.vegaEmbed``), so the plots draw offline.
    It keeps ``{plot_divs}`` and ``{refresh_tag}`` and drops ``{scripts}``, where DVC would put CDN links."""
    import vl_convert as vlc

    bundle = vlc.javascript_bundle(vl_version=DVC_VEGA_LITE).replace("</script", "<\\/script")
    return OFFLINE_TEMPLATE.format(
        vega=vlc.get_vega_version(),
        vega_lite=DVC_VEGA_LITE,
        vega_embed=vlc.get_vega_embed_version(),
        vl_convert=_version("vl-convert-python"),
        bundle=bundle,
    )


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)
