"""Offline cost evaluation: the same decide() and policy as the bot, priced with params."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from app.llm.config import TierConfig, TiersConfig, TokenEstimate
from app.orchestration.cost_eval import evaluate, load_turns, main, parse_turns, turn_cost
from app.orchestration.router import RouterConfig

TIERS = TiersConfig(
    endpoints={
        1: TierConfig(base_url="http://127.0.0.1:1/v1", model="small", price_in_per_1k=Decimal("1"),
                      price_out_per_1k=Decimal("2")),
        2: TierConfig(base_url="http://127.0.0.1:1/v1", model="large", price_in_per_1k=Decimal("10"),
                      price_out_per_1k=Decimal("20")),
    },
    estimate=TokenEstimate(prompt_tokens=1000, completion_tokens=500),
)  # fmt: skip

ROWS = [
    {"intent": "greet", "confidence": 0.95, "question": "hi"},
    {"intent": "track_order", "confidence": 0.9, "question": "where is ORD-10042"},
    {"intent": "ask_delivery", "confidence": 0.9, "question": "delivery time", "retrieval_confidence": 0.8,
     "retrieval_margin": 0.1, "supporting_docs": 2},  # tier 0
    {"intent": "ask_returns", "confidence": 0.9, "question": "returns", "retrieval_confidence": 0.5,
     "supporting_docs": 1},  # tier 1
    {"intent": "ask_billing", "confidence": 0.9, "question": "invoice", "retrieval_confidence": 0.35},  # tier 2
    {"intent": "human_handoff", "confidence": 0.9, "question": "a person please"},
    {"intent": "ask_product", "confidence": 0.2, "question": "hmm"},  # two-stage fallback
    {"intent": "ask_privacy", "confidence": 0.9, "question": "data", "retrieval_confidence": 0.1},  # idk
]  # fmt: skip


def test_shares_and_cost() -> None:
    report = evaluate(parse_turns(ROWS), router=RouterConfig(), tiers=TIERS, turns_per_conversation=4)
    assert report.turns == 8
    assert report.handler_share == {
        "skill": 0.25,
        "knowledge": 0.375,
        "handoff": 0.125,
        "fallback": 0.125,
        "idk": 0.125,
    }
    assert report.tier_share == pytest.approx({0: 1 / 3, 1: 1 / 3, 2: 1 / 3})
    # one question token each ("returns", "invoice"): tier 1 = (1001*1 + 500*2)/1000, tier 2 = (1001*10 + 500*20)/1000
    expected = (Decimal("2.001") + Decimal("20.01")) / 8
    assert report.cost_per_turn == expected
    assert report.cost_per_1k_conversations == expected * 4 * 1000
    halved = evaluate(parse_turns(ROWS), router=RouterConfig(), tiers=TIERS, cache_hit_rate=0.5)
    assert halved.cost_per_turn == expected / 2


def test_unconfigured_tiers_cost_nothing_and_are_not_chosen() -> None:
    report = evaluate(parse_turns(ROWS), router=RouterConfig(), tiers=TiersConfig())
    assert report.tier_share == {0: 1.0, 1: 0.0, 2: 0.0}
    assert report.cost_per_turn == 0
    assert turn_cost(1, "question", TiersConfig()) == 0 and turn_cost(None, "q", TIERS) == 0


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"confidence": 0.9}], "missing field 'intent'"),
        ([{"intent": "greet", "confidence": 2}], "confidence"),
        ([{"intent": "greet", "confidence": 0.9, "colour": "red"}], "unknown fields"),
        (["greet"], "expected a mapping"),
    ],
)
def test_bad_turns_are_refused(rows: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_turns(rows)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="no turns"):
        evaluate([])
    with pytest.raises(ValueError, match="cache_hit_rate"):
        evaluate(parse_turns(ROWS), cache_hit_rate=2)


def test_cli_with_params_and_turn_files(tmp_path: Path, capsys) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "tiers": {**TIERS.model_dump(mode="json"), "policy": {"kind": "rules"}},
        "router": {"nlu_threshold": 0.4},
    }))  # fmt: skip
    turns = tmp_path / "turns.yml"
    turns.write_text(yaml.safe_dump(ROWS))
    assert main([str(turns), "--params", str(params), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["handler_share"]["knowledge"] == 0.375
    assert (
        Decimal(report["cost_per_1k_conversations"]) == (Decimal("2.001") + Decimal("20.01")) / 8 * 4 * 1000
    )
    assert main([str(turns), "--params", str(params)]) == 0
    assert "per 1000 conversations" in capsys.readouterr().out
    as_json = tmp_path / "turns.json"
    as_json.write_text(json.dumps(ROWS))
    assert len(load_turns(as_json)) == 8


def test_baselines_price_the_same_turns_at_one_tier_and_ours_sits_between():
    from app.orchestration.cost_eval import FixedTierPolicy, compare_policies

    turns = parse_turns(ROWS)
    reports = compare_policies(
        turns, {"ours": None, "t1": FixedTierPolicy(1), "t2": FixedTierPolicy(2)}, tiers=TIERS
    )
    assert reports["t2"].tier_share[2] == 1.0 and reports["t1"].tier_share[1] == 1.0
    assert reports["t1"].cost_per_turn < reports["t2"].cost_per_turn
    assert reports["ours"].tier_share[0] > 0 and reports["ours"].cost_per_turn < reports["t2"].cost_per_turn
    assert reports["ours"].handler_share == reports["t2"].handler_share  # the router is the same


class FakeKB:
    """Retrieval scores by keyword: enough to check the features the router receives."""

    def retrieve(self, text, tenant, top_k):
        from types import SimpleNamespace

        scores = [0.9, 0.5] if "delivery" in text else [0.2, 0.19]
        return [SimpleNamespace(score=s, doc_id=f"d{i}") for i, s in enumerate(scores)]

    def confidence(self, text, tenant):
        return 0.85 if "delivery" in text else 0.1


def test_turns_from_predictions_carry_the_live_features():
    from app.orchestration.cost_eval import turns_from_predictions

    rows = [
        {
            "served": "ask_delivery",
            "predicted": "ask_delivery",
            "confidence": "0.93",
            "text": "how long is delivery",
        },
        {
            "served": "nlu_fallback",
            "predicted": "ask_returns",
            "confidence": "0.3",
            "text": "is ORD-10042 late",
        },
    ]
    sure, order = turns_from_predictions(rows, FakeKB(), "acme", top_k=3, min_score=0.3)
    assert (sure.intent, sure.retrieval_confidence, sure.supporting_docs) == ("ask_delivery", 0.85, 2)
    assert abs(sure.retrieval_margin - 0.4) < 1e-9 and not sure.mentions_account
    assert order.intent == "nlu_fallback" and order.mentions_account and order.supporting_docs == 0
