"""The analytics and evaluation pages under AppTest: on empty stores, on turn records the recorder built from
a seeded SQLite tracker store and our store (migrated), and on result files; the numbers shown are the
metric functions' numbers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.analytics.formatting import format_cost, format_ms, format_number, format_rate
from app.analytics.loaders import load_analytics
from app.analytics.turn_records import TurnRecorder
from app.data.db import get_engine, upgrade
from app.data.db import store_url as tracker_url
from app.data.schema import action_runs, llm_calls
from app.settings import get_settings
from tests.app.analytics.tracker import Conversation, create_events_table, write_tracker

PAGES = Path(__file__).resolve().parents[3] / "app" / "ui" / "pages"
ANALYTICS, EVALUATION = PAGES / "3_Analytics.py", PAGES / "4_Evaluation.py"


@pytest.fixture
def state(tmp_path, monkeypatch) -> Iterator[Path]:
    """A state dir of its own (tracker.db and switchboard.db live there) and a fresh settings/cache."""
    monkeypatch.setenv("SWITCHBOARD_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_TENANT", "acme")
    for name in ("SWITCHBOARD_DATABASE_URL", "SWITCHBOARD_TRACKER_STORE_DB", "SWITCHBOARD_TRACKER_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    st.cache_data.clear()
    yield tmp_path
    get_settings.cache_clear()
    st.cache_data.clear()


def page(path: Path) -> AppTest:
    app = AppTest.from_file(str(path), default_timeout=30).run()
    assert not app.exception, app.exception
    return app


def tiles(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def seed(state_dir: Path) -> None:
    """Two acme conversations an hour ago (a knowledge answer with a tier-1 call; a fallback then a
    handoff with its ticket) and one globex conversation, turned into records by the recorder."""
    start = time.time() - 3600
    answered = Conversation("acme:ann", start).session_start()
    answered.turn("hi", "greet", "utter_greet", "Hello!", latency=0.1)
    answered.turn("delivery to Germany?", "ask_delivery", "action_answer_knowledge", "3-5 days", latency=1.5,
                  run={"handler": "knowledge", "tier_tried": 1, "tier_used": 1})  # fmt: skip
    answered.called(1, prompt_tokens=900, completion_tokens=100, cost=0.0022, latency_ms=800)
    handed = Conversation("acme:hal", start + 30).session_start()
    handed.turn("blorp", "nlu_fallback", "action_two_stage_fallback", "Did you mean:", confidence=0.2)
    handed.user("a person please", "human_handoff", delay=5).action("action_handoff", delay=0.3)
    handed.ran("action_handoff", "handoff", rule="handoff_request", ticket_id=1)
    handed.bot("I've opened ticket #1").slot("handoff_active", True).listen()
    other = (
        Conversation("globex:gus", start)
        .session_start()
        .turn("hi", "greet", "utter_greet", "Hi", latency=2.0)
    )
    write_tracker(state_dir / "tracker.db", answered, handed, other)
    url = f"sqlite:///{state_dir / 'switchboard.db'}"
    upgrade(url)
    with get_engine(url).begin() as conn:
        conn.execute(sa.insert(action_runs), [*answered.runs, *handed.runs])
        conn.execute(sa.insert(llm_calls), answered.calls)
    TurnRecorder(tracker_url(str(state_dir / "tracker.db")), url).sync()


# --- analytics page ------------------------------------------------------------------------------------


def test_analytics_page_with_no_stores_says_no_conversations_yet(state):
    app = page(ANALYTICS)
    assert "No conversations yet for tenant acme" in app.info[0].value
    assert not app.metric and not app.error
    assert not (state / "switchboard.db").exists()  # reading creates nothing


def test_analytics_page_with_empty_migrated_stores(state):
    create_events_table(state / "tracker.db")
    upgrade(f"sqlite:///{state / 'switchboard.db'}")
    app = page(ANALYTICS)
    assert "No conversations yet" in app.info[0].value and not app.metric


def test_analytics_page_shows_the_metric_functions_numbers(state):
    seed(state)
    app = page(ANALYTICS)
    shown = tiles(app)
    today = datetime.now(UTC).date()
    expected = load_analytics(f"sqlite:///{state / 'switchboard.db'}", "acme", today - timedelta(days=29),
                              today).kpis  # fmt: skip
    assert shown == {
        "Conversations": format_number(expected.conversations),
        "Containment": format_rate(expected.containment_rate),
        "Escalation": format_rate(expected.escalation_rate),
        "Fallback rate": format_rate(expected.fallback_rate),
        "I don't know rate": format_rate(expected.idk_rate),
        "Error rate": format_rate(expected.error_rate),
        "Cost / conversation": format_cost(expected.cost_mean),
        "Tokens / conversation": format_number(expected.tokens_mean),
        "Latency p50": format_ms(expected.latency_p50_ms),
        "Latency p95": format_ms(expected.latency_p95_ms),
    }
    # and those are the numbers of the seeded conversations
    assert (
        shown["Conversations"] == "2" and shown["Containment"] == "50.0%" and shown["Escalation"] == "50.0%"
    )
    assert shown["Fallback rate"] == "25.0%"  # 1 of 4 user turns
    assert shown["I don't know rate"] == "0.0%" and shown["Error rate"] == "0.0%"
    assert shown["Cost / conversation"] == "0.0011" and shown["Tokens / conversation"] == "500"
    assert not app.info and not app.error
    tables = [frame.value for frame in app.dataframe]
    latency = next(t for t in tables if "p50_ms" in t.columns)
    assert list(latency["handler"]) == ["chitchat", "knowledge", "fallback", "handoff"]
    channels = next(t for t in tables if "channel" in t.columns and "containment_rate" in t.columns)
    assert channels.to_dict("records")[0]["channel"] == "rest"
    assert channels.to_dict("records")[0]["conversations"] == 2


def test_analytics_page_tenant_and_date_range(state):
    seed(state)
    app = page(ANALYTICS)
    assert app.selectbox(key="analytics_tenant").options == ["acme", "globex"]
    app.selectbox(key="analytics_tenant").set_value("globex").run()
    assert not app.exception
    shown = tiles(app)
    assert shown["Conversations"] == "1" and shown["Containment"] == "100.0%"
    assert shown["Latency p50"] == "2,000 ms" and shown["Cost / conversation"] == "0.0000"
    long_ago = datetime.now(UTC).date() - timedelta(days=400)
    app.date_input(key="analytics_dates").set_value((long_ago, long_ago + timedelta(days=1))).run()
    assert not app.exception and "No conversations yet for tenant globex" in app.info[0].value


def test_analytics_page_reports_an_unreachable_store(state, monkeypatch):
    seed(state)
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    get_settings.cache_clear()
    app = page(ANALYTICS)
    assert "The stores cannot be read" in app.error[0].value


# --- evaluation page -----------------------------------------------------------------------------------


@pytest.fixture
def results_root(tmp_path, monkeypatch) -> Iterator[Path]:
    """An empty project root: the evaluation page reads results next to the params.yaml it is given."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text("serve: {}\n")
    monkeypatch.setenv("SWITCHBOARD_PARAMS_FILE", str(root / "params.yaml"))
    get_settings.cache_clear()
    st.cache_data.clear()
    yield root
    get_settings.cache_clear()
    st.cache_data.clear()


def write_results(root: Path) -> None:
    nlu, rag = root / "nlu" / "results", root / "knowledge" / "results"
    nlu.mkdir(parents=True)
    rag.mkdir(parents=True)
    (nlu / "metrics.json").write_text(json.dumps({"intent_accuracy": 0.9331, "intent_macro_f1": 0.9384,
                                                  "oos_recall": 0.875, "n_test": 314}))  # fmt: skip
    (nlu / "threshold.json").write_text(
        json.dumps({"threshold": 0.47, "how": "balanced", "rule": "balanced"})
    )
    curve = "threshold,in_scope_accuracy,oos_recall,oos_precision,fallback_rate\n0.0,0.91,1.0,0.86,0.08\n" \
            "0.5,0.88,0.9,0.9,0.12\n"  # fmt: skip
    (nlu / "threshold_curve.csv").write_text(curve)
    (nlu / "predictions.csv").write_text(
        "actual,predicted,confidence,served,text\ngreet,greet,0.9,greet,hi\n"
        "ask_delivery,ask_returns,0.5,ask_returns,ship?\nask_delivery,ask_delivery,0.8,ask_delivery,deliver\n"
    )
    (rag / "metrics.json").write_text(
        json.dumps(
            {
                "hit_at_1": 0.7806,
                "mrr": 0.8597,
                "questions": 173,
                "ragas": {"rouge_l": 0.38, "judge": "not configured"},
            }
        )
    )
    (rag / "hit_at_k.csv").write_text("k,hit_rate\n1,0.78\n2,0.89\n")
    (rag / "retrievers.csv").write_text("retriever,metric,value\ndense,mrr,0.87\nbm25,mrr,0.74\n")
    bench = root / "benchmarks" / "results"
    (bench / "nlu").mkdir(parents=True)
    (bench / "nlu" / "bot__ours.json").write_text(json.dumps({"dataset": "bot", "intent_accuracy": 0.93}))
    bot = root / "nlu" / "results" / "bot"
    bot.mkdir(parents=True)
    figures = {
        "conversations": 2,
        "turns": 5,
        "task_completion": 0.5,
        "correct_containment": 0.5,
        "containment": 1.0,
        "handler_accuracy": 0.8,
        "latency_ms": {"knowledge": {"turns": 2, "p50": 90.0}},
    }
    (bot / "metrics.json").write_text(json.dumps({
        "llm": "none", "notes": ["no LLM endpoint: LLM tiers not evaluated"], "all": figures, "frozen": figures,
    }))  # fmt: skip
    (bot / "turns.csv").write_text(
        "conversation,turn,expected_handler,handler\na,1,knowledge,idk\na,2,chitchat,chitchat\n"
    )
    (bot / "failing.md").write_text("# Failing conversations\n\n## a\n")
    policies = root / "nlu" / "results" / "policies"
    policies.mkdir(parents=True)
    (policies / "policies.json").write_text(json.dumps({"llm": "none", "notes": [], "rows": [
        {"policy": "tiered", "task_completion": 0.5, "cost_per_1000_conversations": 0.0},
        {"policy": "tiered+cache", "task_completion": 0.5, "cost_per_1000_conversations": 0.0}]}))  # fmt: skip


def test_evaluation_page_without_results_names_the_stages(results_root):
    app = page(EVALUATION)
    notes = " ".join(i.value for i in app.info)
    for stage in (
        "dvc repro evaluate_nlu",
        "dvc repro select_threshold_nlu",
        "dvc repro evaluate_rag",
        "dvc repro benchmark_nlu",
        "dvc repro evaluate_bot",
        "dvc repro compare_policies",
    ):
        assert stage in notes
    assert not app.metric and not app.error


def test_evaluation_page_shows_the_result_files(results_root):
    write_results(results_root)
    app = page(EVALUATION)
    shown = tiles(app)
    assert shown["Intent accuracy"] == "0.9331" and shown["Out-of-scope recall"] == "0.875"
    assert shown["hit@1"] == "0.7806" and shown["MRR"] == "0.8597"
    assert shown["Task completion"] == "0.5" and shown["Handler accuracy"] == "0.8"
    assert any("no LLM endpoint" in w.value for w in app.warning)
    assert any("threshold **0.47**" in m.value for m in app.markdown)
    confusions = next(d.value for d in app.dataframe if "actual" in d.value.columns)
    assert confusions.to_dict("records") == [
        {"actual": "ask_delivery", "predicted": "ask_returns", "count": 1}
    ]
    assert "benchmarks/results/nlu/bot__ours.json" in app.dataframe[-1].value["file"].tolist()
    assert not app.error
    # only the file not written is missing, with the stage that makes it
    assert [i.value for i in app.info] == [
        "No threshold curve (threshold_curve_test.csv) yet: `dvc repro evaluate_nlu` makes it."
    ]


def test_evaluation_page_reports_an_unreadable_file(results_root):
    (results_root / "nlu" / "results").mkdir(parents=True)
    (results_root / "nlu" / "results" / "metrics.json").write_text("{not json")
    app = page(EVALUATION)
    assert "metrics.json cannot be read" in app.error[0].value
    assert any("dvc repro evaluate_rag" in i.value for i in app.info)  # the other sections still render


def test_home_links_to_the_new_pages(state, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_RASA_PORT", "9")  # nothing answers: the home page says so, quickly
    get_settings.cache_clear()
    app = page(PAGES.parent / "Home.py")
    labels = [link.label for link in app.page_link]
    assert "Analytics: containment, fallbacks, cost, latency" in labels
    assert "Evaluation results of the pipeline" in labels
