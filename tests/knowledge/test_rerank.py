"""The passage ranker: its features, its fit on labelled candidates, its JSON file, its cross-validated accuracy."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from knowledge.rerank import (
    FEATURES,
    MODEL_FILE,
    Group,
    PassageRanker,
    SimilarityRanker,
    cross_validated_top1,
    fit_ranker,
    load_ranker,
    top1,
)


def row(**values: float) -> dict[str, float]:
    return {name: values.get(name, 0.0) for name in FEATURES}


def groups(n: int, seed: int = 3) -> list[Group]:
    """Questions whose right candidate has the best section title but often not the best sentence."""
    rng = random.Random(seed)
    made = []
    for q in range(n):
        rows = [{name: rng.random() for name in FEATURES} for _ in range(rng.randint(3, 6))]
        right = rng.randrange(len(rows))
        rows[right]["heading_sim"] = max(r["heading_sim"] for r in rows) + 0.2
        made.append(Group(f"q{q}", rows, [i == right for i in range(len(rows))]))
    return made


def test_the_fitted_ranker_learns_what_picks_the_right_passage(tmp_path: Path) -> None:
    data = groups(60)
    ranker = fit_ranker(data, c=1.0)
    assert ranker.kind == "passage_logistic" and ranker.features == list(FEATURES)
    rows = sum(len(g.rows) for g in data)
    assert ranker.info == {"questions": 60, "rows": rows, "pairs": rows - 60, "c": 1.0}  # each wrong one
    assert ranker.coef[FEATURES.index("heading_sim")] > 0 and ranker.intercept == 0.0
    assert top1(data, lambda g: ranker.scores(g.rows)) > top1(
        data, lambda g: SimilarityRanker().scores(g.rows)
    )
    path = ranker.save(tmp_path)
    assert (
        path == tmp_path / MODEL_FILE and json.loads(path.read_text())["kind"] == "passage_logistic"
    )  # JSON
    again = load_ranker(tmp_path)
    assert isinstance(again, PassageRanker) and again.scores(data[0].rows) == ranker.scores(data[0].rows)


def test_without_a_fitted_ranker_the_most_similar_sentence_wins(tmp_path: Path) -> None:
    ranker = load_ranker(tmp_path)
    assert isinstance(ranker, SimilarityRanker)
    assert ranker.scores([row(unit_sim=0.2), row(unit_sim=0.8)]) == [0.2, 0.8]


def test_fitting_needs_questions_with_a_right_and_a_wrong_candidate() -> None:
    only_right = Group("q", [row(), row()], [True, True])
    none_right = Group("r", [row(), row()], [False, False])
    with pytest.raises(ValueError, match="right and wrong candidates"):
        fit_ranker([only_right, none_right])


def test_the_cross_validated_accuracy_ranks_questions_the_ranker_was_not_fitted_on() -> None:
    learnable, folds = cross_validated_top1(groups(40), seed=0, folds=5)
    assert folds == 5 and learnable > 0.9
    noise = groups(40, seed=9)
    for group in noise:  # the labels no longer follow any feature: held-out accuracy drops to chance
        random.Random(group.id).shuffle(group.right)
    chance, _ = cross_validated_top1(noise, seed=0, folds=5)
    assert chance < 0.6
    assert cross_validated_top1(groups(1), seed=0) == (None, 0)
