"""Evaluation results of the DVC pipeline: NLU (held-out metrics, the out-of-scope threshold curve,
confusions), retrieval and RAG (hit@k, "I don't know", retrievers side by side, ragas), the routing cost
evaluation and the benchmarks.

Read from the result files (``app.analytics.results``) of the project whose ``params.yaml`` the settings
name; a missing file gets a note naming the ``dvc repro`` stage (or command) that makes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app.analytics.formatting import format_figure
from app.analytics.results import (
    ResultPaths,
    ResultUnreadable,
    benchmark_results,
    confusions,
    cost_eval_report,
    metrics_table,
    per_intent_accuracy,
    read_csv,
    read_json,
    shares_table,
)
from app.settings import get_settings

CACHE_TTL_S = 30
NLU_TILES = {
    "intent_accuracy": "Intent accuracy", "intent_macro_f1": "Intent macro F1",
    "in_scope_accuracy": "In-scope accuracy", "oos_recall": "Out-of-scope recall", "entity_f1": "Entity F1",
    "latency_p50_ms": "NLU latency p50 (ms)",
}  # fmt: skip
RAG_TILES = {
    "hit_at_1": "hit@1", "hit_at_5": "hit@5", "mrr": "MRR", "ndcg_at_10": "nDCG@10",
    "idk_precision": "IDK precision", "idk_recall": "IDK recall", "false_idk_rate": "False IDK rate",
    "retrieval_ms_p50": "Retrieval p50 (ms)",
}  # fmt: skip
CURVE_LINES = ["in_scope_accuracy", "oos_recall"]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def json_file(path: Path) -> dict[str, Any] | None:
    return read_json(path)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def csv_file(path: Path, required: tuple[str, ...] = ()) -> pd.DataFrame | None:
    return read_csv(path, required)


def missing(what: str, stage: str) -> None:
    st.info(f"No {what} yet: `dvc repro {stage}` makes it.")


def tiles(values: dict[str, Any], names: dict[str, str]) -> None:
    """Metric tiles for the ``names`` present in ``values``, four to a row."""
    present = [(label, values[key]) for key, label in names.items() if values.get(key) is not None]
    for start in range(0, len(present), 4):
        for column, (label, value) in zip(st.columns(4), present[start : start + 4], strict=False):
            column.metric(label, format_figure(value))


def threshold_chart(curve: pd.DataFrame, threshold: float | None, title: str) -> alt.LayerChart | alt.Chart:
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


def render_nlu(paths: ResultPaths) -> None:
    st.header("NLU")
    metrics = json_file(paths.nlu / "metrics.json")
    threshold = json_file(paths.nlu / "threshold.json")
    if metrics is None:
        missing("NLU metrics (nlu/results/metrics.json)", "evaluate_nlu")
    else:
        st.caption(f"Held-out test split: {metrics.get('n_test', '?')} utterances.")
        tiles(metrics, NLU_TILES)
        with st.expander("All NLU metrics"):
            st.dataframe(metrics_table(metrics), hide_index=True)
    chosen = threshold.get("threshold") if threshold else None
    if threshold is None:
        missing("out-of-scope threshold (nlu/results/threshold.json)", "select_threshold_nlu")
    else:
        st.markdown(f"Out-of-scope threshold **{chosen}** ({threshold.get('how') or threshold.get('rule')}).")
    left, right = st.columns(2)
    for column, name, title, stage in (
        (
            left,
            "threshold_curve.csv",
            "Validation split (where the threshold is chosen)",
            "select_threshold_nlu",
        ),
        (right, "threshold_curve_test.csv", "Held-out test split", "evaluate_nlu"),
    ):
        curve = csv_file(paths.nlu / name, ("threshold", *CURVE_LINES))
        with column:
            if curve is None:
                missing(f"threshold curve ({name})", stage)
            else:
                st.altair_chart(threshold_chart(curve, chosen, title), width="stretch")
    predictions = csv_file(paths.nlu / "predictions.csv", ("actual", "predicted"))
    if predictions is None:
        missing("NLU predictions (nlu/results/predictions.csv)", "evaluate_nlu")
        return
    left, right = st.columns(2)
    accuracy = per_intent_accuracy(predictions)
    left.altair_chart(
        alt.Chart(accuracy, title="Accuracy per intent (served, after the threshold)").mark_bar().encode(
            x=alt.X("accuracy:Q", scale=alt.Scale(domain=[0, 1])), y=alt.Y("actual:N", sort="x", title=None),
            tooltip=["actual:N", alt.Tooltip("accuracy:Q", format=".1%"), "support:Q"],
        ),
        width="stretch",
    )  # fmt: skip
    right.markdown("**Most frequent confusions**")
    right.dataframe(confusions(predictions), hide_index=True)


def render_rag(paths: ResultPaths) -> None:
    st.header("Retrieval and answers")
    metrics = json_file(paths.rag / "metrics.json")
    if metrics is None:
        missing("retrieval metrics (knowledge/results/metrics.json)", "evaluate_rag")
        return
    st.caption(
        f"{metrics.get('questions', '?')} gold questions · served retriever: {metrics.get('retriever', '?')}"
    )
    tiles(metrics, RAG_TILES)
    left, right = st.columns(2)
    hits = csv_file(paths.rag / "hit_at_k.csv", ("k", "hit_rate"))
    if hits is not None:
        left.altair_chart(
            alt.Chart(hits, title="Gold questions answered in the top k").mark_line(point=True).encode(
                x=alt.X("k:O"), y=alt.Y("hit_rate:Q", scale=alt.Scale(domain=[0, 1]))
            ),
            width="stretch",
        )  # fmt: skip
    idk = csv_file(paths.rag / "idk_curve.csv", ("precision", "recall"))
    if idk is not None:
        right.altair_chart(
            alt.Chart(idk, title="\"I don't know\": precision against recall").mark_line(point=True).encode(
                x=alt.X("recall:Q"), y=alt.Y("precision:Q"), order="recall:Q"
            ),
            width="stretch",
        )  # fmt: skip
    retrievers = csv_file(paths.rag / "retrievers.csv", ("retriever", "metric", "value"))
    if retrievers is not None:
        st.altair_chart(
            alt.Chart(retrievers, title="Retrievers side by side").mark_bar().encode(
                x=alt.X("metric:N", title=None), xOffset="retriever:N", y=alt.Y("value:Q"),
                color="retriever:N", tooltip=["retriever:N", "metric:N", "value:Q"],
            ),
            width="stretch",
        )  # fmt: skip
    ragas = metrics.get("ragas")
    if isinstance(ragas, dict):
        st.markdown(f"**ragas** (judge: {ragas.get('judge', 'none')})")
        st.dataframe(metrics_table({k: v for k, v in ragas.items() if k != "judge"}), hide_index=True)
    with st.expander("All retrieval metrics"):
        st.dataframe(metrics_table(metrics), hide_index=True)


def render_cost(paths: ResultPaths) -> None:
    st.header("Routing cost evaluation")
    found = cost_eval_report(paths)
    if found is None:
        st.info(
            "No cost evaluation yet: `dvc repro evaluate_cost` writes one (or, for your own labelled turns, "
            "`python -m app.orchestration.cost_eval TURNS.yml --json`)."
        )
        return
    path, report = found
    st.caption(f"From {path.relative_to(paths.root)}: {report.get('turns', '?')} labelled turns, "
               f"{report.get('turns_per_conversation', '?')} turns per conversation, "
               f"cache hit rate {report.get('cache_hit_rate', 0)}.")  # fmt: skip
    left, mid, right = st.columns(3)
    left.metric("Cost per 1000 conversations", format_figure(report.get("cost_per_1k_conversations")))
    mid.metric("Cost per turn", format_figure(report.get("cost_per_turn")))
    right.metric("Turns", format_figure(report.get("turns")))
    left, right = st.columns(2)
    for column, key, label, title in ((left, "handler_share", "handler", "Turns by handler"),
                                      (right, "tier_share", "tier", "Knowledge turns by tier")):  # fmt: skip
        shares = report.get(key)
        if isinstance(shares, dict) and shares:
            column.altair_chart(
                alt.Chart(shares_table(shares, label), title=title).mark_bar().encode(
                    x=alt.X(f"{label}:N", title=None), y=alt.Y("share:Q", axis=alt.Axis(format="%"))
                ),
                width="stretch",
            )  # fmt: skip


def render_benchmarks(paths: ResultPaths) -> None:
    st.header("Benchmarks")
    table = benchmark_results(paths)
    if table is None:
        st.info("No benchmark results yet: `dvc repro benchmark_nlu` (and `benchmarks/nlu.py`) make them.")
        return
    st.dataframe(table, hide_index=True)


def main() -> None:
    st.set_page_config(page_title="Switchboard · Evaluation", page_icon="🧪", layout="wide")
    settings = get_settings()
    paths = ResultPaths.from_root(Path(settings.params_file).resolve().parent)
    st.title("Evaluation")
    st.caption(f"Results of the DVC pipeline in {paths.root}")
    if st.sidebar.button("Reload results", key="reload"):
        st.cache_data.clear()
    for render in (render_nlu, render_rag, render_cost, render_benchmarks):
        try:
            render(paths)
        except ResultUnreadable as exc:
            st.error(str(exc))


main()
