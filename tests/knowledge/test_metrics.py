"""The evaluation metrics on hand-computed cases; scikit-learn's AUC and PR curve against their definitions."""

from __future__ import annotations

import itertools

import pytest

from knowledge.metrics import (
    hit_at_k,
    idk_precision_recall,
    mean,
    ndcg_at_k,
    precision_recall_curve,
    recall_at_k,
    reciprocal_rank,
    roc_auc,
)

RANKED = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("relevant", "k", "expected"),
    [
        ({"a"}, 1, 1.0),
        ({"b"}, 1, 0.0),
        ({"b"}, 2, 1.0),
        ({"d", "x"}, 3, 0.0),
        ({"d", "x"}, 4, 1.0),
        (set(), 4, 0.0),
    ],
)
def test_hit_at_k(relevant: set[str], k: int, expected: float) -> None:
    assert hit_at_k(RANKED, relevant, k) == expected


@pytest.mark.parametrize(
    ("relevant", "k", "expected"),
    [({"a"}, None, 1.0), ({"c"}, None, 1 / 3), ({"d", "b"}, None, 0.5), ({"d"}, 3, 0.0), ({"x"}, None, 0.0)],
)
def test_reciprocal_rank(relevant: set[str], k: int | None, expected: float) -> None:
    assert reciprocal_rank(RANKED, relevant, k) == pytest.approx(expected)


def test_mrr_is_the_mean_reciprocal_rank() -> None:
    # first relevant at ranks 1, 2 and never: (1 + 1/2 + 0) / 3
    runs = [(["a", "b"], {"a"}), (["a", "b"], {"b"}), (["a", "b"], {"z"})]
    assert mean(reciprocal_rank(ranked, relevant) for ranked, relevant in runs) == pytest.approx(0.5)
    assert mean([]) is None


@pytest.mark.parametrize(
    ("relevant", "k", "expected"),
    [({"a", "c"}, 1, 0.5), ({"a", "c"}, 3, 1.0), ({"a", "x", "y"}, 4, 1 / 3), (set(), 4, 0.0)],
)
def test_recall_at_k(relevant: set[str], k: int, expected: float) -> None:
    assert recall_at_k(RANKED, relevant, k) == pytest.approx(expected)


def test_ndcg_with_binary_relevance() -> None:
    assert ndcg_at_k(["a", "b"], {"a"}, 10) == 1.0
    assert ndcg_at_k(["b", "a"], {"a"}, 10) == pytest.approx(1 / 1.5849625)  # 1 / log2(3)
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx((1 + 0.5) / (1 + 1 / 1.5849625))
    assert ndcg_at_k(["x"] * 10 + ["a"], {"a"}, 10) == 0.0
    assert ndcg_at_k(["a"], set(), 10) == 0.0


def test_scores_follow_the_beir_definitions() -> None:
    gains = {"a": 2, "b": 1, "z": 0}
    assert ndcg_at_k(["a", "b"], gains) == 1.0
    assert ndcg_at_k(["b", "a"], gains) == pytest.approx((1 + 2 / 1.5849625) / (2 + 1 / 1.5849625))
    assert recall_at_k(["x", "b"], gains, 100) == 0.5 and recall_at_k(["x", "b"], gains, 1) == 0.0
    assert reciprocal_rank(["z", "x", "a"], gains, 10) == pytest.approx(1 / 3)
    assert hit_at_k(["z", "x"], gains, 2) == 0.0  # a judgement of 0 is not relevant


def test_a_set_of_ids_is_the_mapping_with_gain_1() -> None:
    ranked = ["c", "x", "a", "y", "b"]
    for k in (1, 3, 5):
        for metric in (hit_at_k, recall_at_k, reciprocal_rank, ndcg_at_k):
            assert metric(ranked, {"a", "b"}, k) == metric(ranked, {"a": 1, "b": 1, "q": 0}, k)


def test_idk_precision_and_recall() -> None:
    # abstained on q1 (unanswerable: right) and q2 (answerable: wrong); missed unanswerable q3.
    abstained = [True, True, False, False]
    unanswerable = [True, False, True, False]
    assert idk_precision_recall(abstained, unanswerable) == (0.5, 0.5)
    assert idk_precision_recall([False, False], [True, False]) == (None, 0.0)
    assert idk_precision_recall([True], [False]) == (0.0, None)
    with pytest.raises(ValueError):
        idk_precision_recall([True], [])


def test_precision_recall_curve_and_auc() -> None:
    scores = [0.9, 0.8, 0.3, 0.2, 0.6]
    answerable = [True, True, False, False, True]
    assert roc_auc(scores, answerable) == 1.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.5], [True]) is None
    points = {p["cut_off"]: p for p in precision_recall_curve(scores, answerable, [0.0, 0.25, 0.5, 0.85])}
    assert points[0.0] == {"cut_off": 0.0, "precision": None, "recall": 0.0}
    assert points[0.25] == {"cut_off": 0.25, "precision": 1.0, "recall": 0.5}
    assert points[0.5] == {"cut_off": 0.5, "precision": 1.0, "recall": 1.0}
    assert points[0.85]["precision"] == pytest.approx(2 / 4)  # refuses 0.8 and 0.6 too


# --- the library against the definitions it replaced ------------------------------------------------


def auc_by_definition(scores: list[float], answerable: list[bool]) -> float | None:
    """P(answerable scores above unanswerable), ties counting half: every pair compared."""
    pos = [s for s, a in zip(scores, answerable, strict=True) if a]
    neg = [s for s, a in zip(scores, answerable, strict=True) if not a]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 4)


def curve_by_definition(scores: list[float], answerable: list[bool], cut_offs: list[float]) -> list[dict]:
    """Refuse every score below the cut-off and count."""
    points = []
    for cut in cut_offs:
        refused = [score < cut for score in scores]
        hits = sum(r and not a for r, a in zip(refused, answerable, strict=True))
        points.append(
            {
                "cut_off": round(float(cut), 4),
                "precision": round(hits / sum(refused), 4) if any(refused) else None,
                "recall": round(hits / sum(not a for a in answerable), 4) if not all(answerable) else None,
            }
        )
    return points


CASES = [
    ([0.9, 0.8, 0.3, 0.2, 0.6], [True, True, False, False, True]),  # separable
    ([0.5, 0.5, 0.5, 0.5], [True, False, True, False]),  # all tied
    ([0.7, 0.4, 0.4, 0.4, 0.1, 0.7], [True, True, False, False, False, False]),  # ties across classes
    ([0.2, 0.9, 0.35, 0.35, 0.8, 0.1, 0.6], [True, False, True, False, False, True, True]),  # inversions
    ([0.3, 0.6, 0.6], [True, True, True]),  # no unanswerable question
    ([0.3, 0.6], [False, False]),  # no answerable question
    ([], []),
]


@pytest.mark.parametrize(("scores", "answerable"), CASES)
def test_roc_auc_is_the_pairwise_definition_ties_counting_half(
    scores: list[float], answerable: list[bool]
) -> None:
    assert roc_auc(scores, answerable) == auc_by_definition(scores, answerable)


def test_roc_auc_of_hand_counted_ties() -> None:
    # answerable 0.7 and 0.4 against unanswerable 0.4, 0.4, 0.1, 0.7 (8 pairs):
    # 0.7: wins over 0.4, 0.4, 0.1 and ties 0.7 -> 3.5; 0.4: ties 0.4 twice, beats 0.1, loses to 0.7 -> 2
    assert roc_auc(*CASES[2]) == pytest.approx(5.5 / 8)


@pytest.mark.parametrize(("scores", "answerable"), CASES)
def test_the_precision_recall_curve_is_the_counting_definition(
    scores: list[float], answerable: list[bool]
) -> None:
    cut_offs = sorted(
        {0.0, 1.0, *(round(i / 20, 2) for i in range(21)), *scores, *(s + 1e-9 for s in scores)}
    )
    assert precision_recall_curve(scores, answerable, cut_offs) == curve_by_definition(
        scores, answerable, cut_offs
    )


def test_the_curve_and_auc_agree_with_the_definitions_on_every_small_labelling() -> None:
    scores = [0.1, 0.4, 0.4, 0.6, 0.9]
    cut_offs = [0.0, 0.1, 0.2, 0.4, 0.5, 0.6, 0.9, 1.0]
    for labels in itertools.product([True, False], repeat=len(scores)):
        answerable = list(labels)
        assert roc_auc(scores, answerable) == auc_by_definition(scores, answerable)
        assert precision_recall_curve(scores, answerable, cut_offs) == curve_by_definition(
            scores, answerable, cut_offs
        )
