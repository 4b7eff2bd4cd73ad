"""The complexity policies: transparent rules, and fixed tiers as the baselines, behind the same interface."""

from __future__ import annotations

import pytest

from app.llm.policy import (
    Decision,
    Features,
    RulePolicy,
    build_policy,
)


def f(
    conf: float, margin: float = 0.1, docs: int = 2, words: int = 6, nlu: float = 0.9, failed: bool = False
):
    return Features(conf, margin, docs, words, nlu, failed)


@pytest.mark.parametrize(
    ("features", "tier", "reason_part"),
    [
        (f(0.80), 0, "retrieval sure"),
        (f(0.80, margin=0.01), 1, "retrieval fair"),  # two chunks about equally good: let a model combine
        (f(0.80, words=30), 1, "retrieval fair"),  # longer than extractive_max_words
        (f(0.80, nlu=0.45), 1, "retrieval fair"),  # unsure intent skips tier 0
        (f(0.50), 1, "retrieval fair"),
        (f(0.50, docs=0), 2, "retrieval weak"),
        (f(0.30), 2, "retrieval weak"),
        (f(0.80, words=45), 2, "long question"),
        (f(0.80, failed=True), 1, "one tier up after an earlier failure"),
        (f(0.50, failed=True), 2, "one tier up"),
    ],
)
def test_rule_policy(features: Features, tier: int, reason_part: str) -> None:
    decision = RulePolicy().choose_tier(features)
    assert decision.tier == tier
    assert reason_part in decision.reason


def test_rule_policy_uses_the_next_available_tier() -> None:
    assert RulePolicy(available=(0, 2)).choose_tier(f(0.5)) == Decision(
        2, "retrieval fair (0.50 >= 0.42, 2 supporting docs); tier 1 unavailable, using tier 2"
    )
    # no LLM configured: the bot still answers, extractively
    assert RulePolicy(available=(0,)).choose_tier(f(0.3)).tier == 0


def test_thresholds_come_from_params_and_bad_ones_are_refused() -> None:
    policy = build_policy({"kind": "rules", "extractive_min_confidence": 0.9}, (0, 1, 2))
    assert isinstance(policy, RulePolicy) and policy.thresholds.extractive_min_confidence == 0.9
    assert policy.choose_tier(f(0.8)).tier == 1
    with pytest.raises(ValueError, match="tiers.policy"):
        build_policy({"extractive_min_confidence": "high"}, (0, 1, 2))
    with pytest.raises(ValueError, match="kind"):
        build_policy({"kind": "magic"}, (0, 1, 2))
    with pytest.raises(ValueError, match="kind"):
        build_policy({"kind": "learned"}, (0, 1, 2))  # removed: nothing could train it (app/llm/policy.py)


def test_features_are_validated_and_derived_from_scores() -> None:
    with pytest.raises(ValueError, match="retrieval_confidence"):
        Features(retrieval_confidence=float("nan"))
    with pytest.raises(ValueError, match="negative"):
        Features(0.5, supporting_docs=-1)
    features = Features.from_question("how long do refunds take", [0.5, 0.7, 0.3], min_score=0.42)
    assert features == Features(0.7, pytest.approx(0.2), 2, 5, 1.0, False)


def test_a_question_naming_the_users_order_skips_the_extractive_tier():
    from app.llm.policy import Features, RulePolicy, RuleThresholds

    sure = dict(retrieval_confidence=0.9, retrieval_margin=0.2, supporting_docs=2, question_words=8)
    policy = RulePolicy(available=(0, 1, 2))
    assert policy.choose_tier(Features(**sure)).tier == 0
    decision = policy.choose_tier(Features(**sure, mentions_account=True))
    assert decision.tier == 1 and "order" in decision.reason
    off = RulePolicy(RuleThresholds(account_min_tier=0), available=(0, 1, 2))
    assert off.choose_tier(Features(**sure, mentions_account=True)).tier == 0
    assert RulePolicy(available=(0,)).choose_tier(Features(**sure, mentions_account=True)).tier == 0


def test_a_fixed_policy_always_picks_its_tier_or_the_next_available():
    from app.llm.policy import FixedPolicy, build_policy

    weak = Features(retrieval_confidence=0.1)
    assert build_policy({"kind": "fixed", "tier": 2}, available=[0, 1, 2]).choose_tier(weak).tier == 2
    assert build_policy({"kind": "fixed", "tier": 0}, available=[0, 1, 2]).choose_tier(weak).tier == 0
    assert FixedPolicy(1, available=[0, 2]).choose_tier(weak).tier == 2  # tier 1 not configured
    with pytest.raises(ValueError, match="tiers.policy.tier"):
        FixedPolicy(3)
