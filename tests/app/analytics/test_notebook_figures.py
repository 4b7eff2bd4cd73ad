"""The figures the notebooks add to the analytics modules: the handler funnel over turn records, the turn records
an evaluation writes (read back for :mod:`app.analytics.kpis`), result paths overridden as a stage's arguments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.analytics.kpis import call_frame, conversation_frame, handler_funnel, kpis, turn_frame
from app.analytics.results import ResultPaths
from app.evaluation.report import read_records, write_records


def rec(sender: str, index: int, handler: str, **fields) -> dict:
    return {"tenant_id": "acme", "user_id": sender, "conversation_id": f"acme:{sender}", "session_index": 1,
            "turn_index": index, "started_at": datetime(2026, 12, 1, 9, index, tzinfo=UTC), "channel": "rest",
            "model_variant": "champion", "intent": "faq", "handler": handler, "llm_call_ids": [], **fields}  # fmt: skip


RECORDS = [
    rec("ann", 1, "skill"),
    rec("ann", 2, "knowledge", tier_used=1, llm_call_ids=[7]),
    rec("bob", 1, "knowledge", tier_used=0),
    rec("bob", 2, "fallback"),
    rec("bob", 3, "handoff"),
]
CALLS = {7: {"id": 7, "tier": 1, "model": "small", "prompt_tokens": 900, "completion_tokens": 100,
             "cost": 0.002, "latency_ms": 300, "outcome": "ok", "prompt": "not written"}}  # fmt: skip


def test_the_funnel_counts_turns_and_conversations_per_handler_in_vocabulary_order():
    turns = turn_frame(RECORDS, call_frame(CALLS.values()))
    funnel = handler_funnel(turns).set_index("handler")
    assert list(funnel.index) == ["skill", "knowledge", "fallback", "handoff"]
    assert funnel.loc["knowledge"].to_dict() == {"turns": 2, "share": 0.4, "conversations": 2,
                                                 "conversation_share": 1.0}  # fmt: skip
    assert funnel["turns"].sum() == len(RECORDS) and funnel["share"].sum() == pytest.approx(1)
    assert handler_funnel(turn_frame([], call_frame([]))).empty


def test_an_evaluations_turn_records_read_back_give_the_same_figures(tmp_path):
    path = tmp_path / "bot" / "records.json"
    write_records(path, RECORDS, CALLS)
    records, calls = read_records(path)
    assert calls == [{k: v for k, v in CALLS[7].items() if k != "prompt"}]  # the call columns only
    before = turn_frame(RECORDS, call_frame(CALLS.values()))
    after = turn_frame(records, call_frame(calls))
    assert kpis(conversation_frame(after), after) == kpis(conversation_frame(before), before)
    assert after["cost"].sum() == pytest.approx(0.002) and after["escalated"].sum() == 1


def test_result_paths_can_be_overridden_and_an_unknown_one_is_refused(tmp_path):
    paths = ResultPaths.from_root(tmp_path, {"bot_results": "elsewhere/bot"})
    assert paths.bot == tmp_path / "elsewhere" / "bot" and paths.nlu == tmp_path / "nlu" / "results"
    with pytest.raises(ValueError, match="unknown result paths"):
        ResultPaths.from_root(tmp_path, {"bot": "x"})
