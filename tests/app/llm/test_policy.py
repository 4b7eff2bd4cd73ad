"""The complexity policies: transparent rules and a learned classifier behind the same interface."""

from __future__ import annotations

import random

import pytest

from app.llm.policy import (
    Decision,
    Features,
    LearnedPolicy,
    RulePolicy,
    TierPolicy,
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
    with pytest.raises(ValueError, match="model_path"):
        build_policy({"kind": "learned"}, (0, 1, 2))


def test_features_are_validated_and_derived_from_scores() -> None:
    with pytest.raises(ValueError, match="retrieval_confidence"):
        Features(retrieval_confidence=float("nan"))
    with pytest.raises(ValueError, match="negative"):
        Features(0.5, supporting_docs=-1)
    features = Features.from_question("how long do refunds take", [0.5, 0.7, 0.3], min_score=0.42)
    assert features == Features(0.7, pytest.approx(0.2), 2, 5, 1.0, False)


def labelled_questions(n: int, seed: int = 7) -> list[tuple[Features, int]]:
    """Synthetic labels: sure retrieval -> 0, fair -> 1, weak -> 2 (with noise in the scores)."""
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        tier = rng.choice((0, 1, 2))
        conf = {0: rng.uniform(0.65, 0.95), 1: rng.uniform(0.42, 0.62), 2: rng.uniform(0.1, 0.4)}[tier]
        examples.append((Features(conf, rng.uniform(0, 0.2), rng.randint(0, 3), rng.randint(3, 30)), tier))
    return examples


def test_learned_policy_fits_labelled_questions_and_round_trips(tmp_path) -> None:
    train, test = labelled_questions(300), labelled_questions(100, seed=8)
    policy = LearnedPolicy().fit(train)
    assert isinstance(policy, TierPolicy)
    accuracy = sum(policy.choose_tier(x).tier == y for x, y in test) / len(test)
    assert accuracy >= 0.9
    decision = policy.choose_tier(f(0.9))
    assert decision.tier == 0 and decision.reason.startswith("learned policy")

    path = tmp_path / "policy.skops"
    policy.save(path)
    loaded = LearnedPolicy.load(path)
    assert [loaded.choose_tier(x).tier for x, _ in test] == [policy.choose_tier(x).tier for x, _ in test]
    assert isinstance(build_policy({"kind": "learned", "model_path": str(path)}, (0, 1, 2)), LearnedPolicy)


def test_learned_policy_is_conservative_with_a_higher_min_proba() -> None:
    train = labelled_questions(300)
    borderline = f(0.62, margin=0.05)
    eager = LearnedPolicy(min_proba=0.3).fit(train).choose_tier(borderline).tier
    careful = LearnedPolicy(min_proba=0.95).fit(train).choose_tier(borderline).tier
    assert careful > eager


def test_learned_policy_respects_available_tiers_and_refuses_bad_input() -> None:
    policy = LearnedPolicy(available=(0, 2)).fit(labelled_questions(300))
    assert policy.choose_tier(f(0.5)).tier == 2
    with pytest.raises(ValueError, match="two tiers"):
        LearnedPolicy().fit([(f(0.5), 1), (f(0.6), 1)])
    with pytest.raises(ValueError, match="labels"):
        LearnedPolicy().fit([(f(0.5), 1), (f(0.6), 5)])
    with pytest.raises(RuntimeError, match="fit"):
        LearnedPolicy().choose_tier(f(0.5))


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
