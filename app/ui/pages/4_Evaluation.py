"""Evaluation results of the DVC pipeline: the bot as users meet it (the conversation test set played through
the served stack: task completion, containment, handlers, failing conversations), tier policies compared on
the same stack, NLU (held-out metrics, the out-of-scope threshold curve, confusions), retrieval and RAG (hit@k,
"I don't know", retrievers side by side, ragas) and the benchmarks.

Read from the result files (``app.analytics.results``) of the project whose ``params.yaml`` the settings
name; a missing file gets a note naming the ``dvc repro`` stage (or command) that makes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.analytics import charts
from app.analytics.formatting import format_figure
from app.analytics.results import (
    ResultPaths,
    ResultUnreadable,
    benchmark_results,
    confusions,
    metrics_table,
    read_csv,
    read_json,
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
CURVE_LINES = charts.CURVE_LINES


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
                st.altair_chart(charts.threshold_curve(curve, chosen, title), width="stretch")
    predictions = csv_file(paths.nlu / "predictions.csv", ("actual", "predicted"))
    if predictions is None:
        missing("NLU predictions (nlu/results/predictions.csv)", "evaluate_nlu")
        return
    left, right = st.columns(2)
    left.altair_chart(charts.intent_accuracy(predictions), width="stretch")
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
        left.altair_chart(charts.hit_at_k(hits), width="stretch")
    idk = csv_file(paths.rag / "idk_curve.csv", ("precision", "recall"))
    if idk is not None:
        right.altair_chart(charts.idk_curve(idk), width="stretch")
    retrievers = csv_file(paths.rag / "retrievers.csv", ("retriever", "metric", "value"))
    if retrievers is not None:
        st.altair_chart(charts.retrievers(retrievers), width="stretch")
    ragas = metrics.get("ragas")
    if isinstance(ragas, dict):
        st.markdown(f"**ragas** (judge: {ragas.get('judge', 'none')})")
        st.dataframe(metrics_table({k: v for k, v in ragas.items() if k != "judge"}), hide_index=True)
    with st.expander("All retrieval metrics"):
        st.dataframe(metrics_table(metrics), hide_index=True)


BOT_TILES = {
    "task_completion": "Task completion", "correct_containment": "Correct containment",
    "containment": "Containment", "handler_accuracy": "Handler accuracy",
    "false_idk_on_answerable": "False IDK (answerable)", "idk_on_unanswerable": "IDK on unanswerable",
    "cost_per_1000_conversations": "Cost / 1000 conversations", "intent_accuracy": "Intent accuracy",
}  # fmt: skip


def render_bot(paths: ResultPaths) -> None:
    st.header("The bot, as users meet it")
    metrics = json_file(paths.bot / "metrics.json")
    if metrics is None:
        missing("bot-level evaluation", "evaluate_bot")
        return
    for note in metrics.get("notes") or []:
        st.warning(note)
    sets = [
        name for name in metrics if isinstance(metrics[name], dict) and "task_completion" in metrics[name]
    ]
    chosen = st.radio("Conversations", sets, horizontal=True, key="bot_set") if len(sets) > 1 else sets[0]
    figures = metrics[chosen]
    st.caption(f"{figures.get('conversations')} conversations, {figures.get('turns')} scored turns, played "
               "through the gateway; handlers, sources and costs read back from the turn records.")  # fmt: skip
    columns = st.columns(4)
    for i, (key, label) in enumerate(BOT_TILES.items()):
        columns[i % 4].metric(label, format_figure(figures.get(key)))
    latency = figures.get("latency_ms") or {}
    if latency:
        table = pd.DataFrame([{"handler": h, **v} for h, v in latency.items()])
        st.dataframe(table, hide_index=True)
    turns = csv_file(paths.bot / "turns.csv", ("expected_handler", "handler"))
    if turns is not None:
        chart = charts.confusion(
            turns, "handler", "expected_handler", "Expected vs actual handler", "actual", "expected"
        )
        st.altair_chart(chart, width="stretch")
    failing = paths.bot / "failing.md"
    if failing.is_file():
        with st.expander("Failing conversations, with their transcripts"):
            st.markdown(failing.read_text())


def render_policies(paths: ResultPaths) -> None:
    st.header("Tier policies on the served stack")
    table = json_file(paths.policies / "policies.json")
    if table is None:
        missing("policy comparison", "compare_policies")
        return
    for note in table.get("notes") or []:
        st.warning(note)
    rows = pd.DataFrame(table.get("rows") or [])
    if not rows.empty:
        st.dataframe(rows.drop(columns=["tiers_used"], errors="ignore"), hide_index=True)
        st.altair_chart(charts.policies(rows), width="stretch")


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
    for render in (render_bot, render_policies, render_nlu, render_rag, render_benchmarks):
        try:
            render(paths)
        except ResultUnreadable as exc:
            st.error(str(exc))


main()
