"""The intent classifier's calibration share (nlu.calibration): stratified, chosen by text not order, read
from the config the way the classifier reads it."""

from __future__ import annotations

import random

import pytest
import yaml

from nlu.calibration import CLASSIFIER, DEFAULT_FRACTION, DEFAULT_SEED, calibration_holdout, holdout_of
from tests.conftest import ROOT

EXAMPLES = [
    (f"{intent} example number {i}", intent)
    for intent, n in (("a", 20), ("b", 10), ("c", 2))
    for i in range(n)
]


def held_texts(examples, fraction=0.1, seed=42) -> set[str]:
    mask = calibration_holdout(examples, fraction, seed)
    return {text for (text, _), held in zip(examples, mask, strict=True) if held}


def test_each_intent_gives_its_share_and_small_ones_keep_everything():
    held = held_texts(EXAMPLES)
    assert sum(t.startswith("a ") for t in held) == 2  # round(20 * 0.1)
    assert sum(t.startswith("b ") for t in held) == 1
    assert not any(t.startswith("c ") for t in held)  # 2 examples: all stay for the refit
    assert held_texts(EXAMPLES, 0.0) == set()


def test_the_choice_depends_on_the_text_not_the_order():
    shuffled = EXAMPLES[:]
    random.Random(3).shuffle(shuffled)
    assert held_texts(shuffled) == held_texts(EXAMPLES)
    # surrounding whitespace is not part of the text (Rasa's loader and our reader may differ there)
    assert held_texts([(f"  {t} ", i) for t, i in EXAMPLES]) == {f"  {t} " for t in held_texts(EXAMPLES)}
    assert held_texts(EXAMPLES, seed=7) != held_texts(EXAMPLES)


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="must be in"):
        calibration_holdout(EXAMPLES, 1.0, 42)
    with pytest.raises(ValueError, match=r"calibration_holdout must be in \[0, 1\), not -0.1"):
        holdout_of([{"name": CLASSIFIER, "calibration_holdout": -0.1}])


def test_the_share_is_read_from_the_classifier_in_a_config():
    for name in ("ours", "ours_ft", "ours_ft_bio"):
        pipeline = yaml.safe_load((ROOT / "nlu" / "configs" / f"{name}.yml").read_text())["pipeline"]
        assert holdout_of(pipeline) == (0.1, 42)
    assert holdout_of([{"name": CLASSIFIER}]) == (DEFAULT_FRACTION, DEFAULT_SEED)
    assert holdout_of([{"name": CLASSIFIER, "calibration_holdout": 0.0, "random_state": 5}]) == (0.0, 5)
    assert holdout_of([{"name": "DIETClassifier"}]) == (0.0, 0)
