"""The intent classifier's calibration share: which training examples it holds out to fit its temperature.

``SentenceIntentClassifier`` (Rasa side) fits one softmax temperature on a stratified share of its training data,
then refits on everything. With a fine-tuned encoder (``encoder: finetuned``) those examples must not be in the
encoder's training data as well: an encoder that has learnt them puts them far from the other intents, the
held-out logits look surer than new messages' will, and the temperature comes out too low (overconfident
confidences at the out-of-scope threshold). So ``nlu/finetune.py`` (main environment) does not teach the
encoder the intents of exactly the share the classifier will hold out (with an entity head, their entities are
still learnt: the temperature is the intent classifier's alone). Both sides read the training file their own way (Rasa's loader, our YAML
reader), so the share is chosen from the examples' text and intent alone, not their order::

    held = calibration_holdout([(text, intent), ...], fraction=0.1, seed=42)   # one bool per example

Plain Python and numpy: imported by both environments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The classifier's class path in a Rasa config, and its defaults for the share (its ``get_default_config``).
CLASSIFIER = "nlu.components.sentence_classifier.SentenceIntentClassifier"
DEFAULT_FRACTION = 0.1
DEFAULT_SEED = 42
#: Intents with fewer examples keep them all (the refit needs every intent in the rest).
MIN_EXAMPLES = 3


def _rank(text: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{text.strip()}".encode(), digest_size=8).digest()


def check_share(fraction: float) -> float:
    """``fraction`` if it is a share the classifier can hold out ([0, 1)), else ValueError saying so."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"calibration_holdout must be in [0, 1), not {fraction}")
    return fraction


def calibration_holdout(examples: Sequence[tuple[str, str]], fraction: float, seed: int) -> np.ndarray:
    """A bool per ``(text, intent)`` example: True for the ones held out to fit the temperature.

    Of each intent with at least :data:`MIN_EXAMPLES` examples, ``max(1, round(n * fraction))`` are held out:
    the ones whose text hashes (with ``seed``) lowest. The same examples in any order give the same choice."""
    check_share(fraction)
    held = np.zeros(len(examples), dtype=bool)
    if fraction == 0.0:
        return held
    by_intent: dict[str, list[int]] = {}
    for i, (_, intent) in enumerate(examples):
        by_intent.setdefault(intent, []).append(i)
    for indices in by_intent.values():
        if len(indices) < MIN_EXAMPLES:
            continue
        ordered = sorted(indices, key=lambda i: (_rank(examples[i][0], seed), i))
        held[ordered[: max(1, round(len(indices) * fraction))]] = True
    return held


def holdout_of(pipeline: Sequence[dict[str, Any]]) -> tuple[float, int]:
    """The classifier's ``(calibration_holdout, random_state)`` in a Rasa config's pipeline; ``(0.0, 0)`` when
    the pipeline has no ``SentenceIntentClassifier`` (nothing is held out for it). ValueError (or TypeError) for
    a setting that is not a number, or a share outside [0, 1)."""
    for component in pipeline:
        if isinstance(component, dict) and component.get("name") == CLASSIFIER:
            fraction = check_share(float(component.get("calibration_holdout", DEFAULT_FRACTION)))
            return fraction, int(component.get("random_state", DEFAULT_SEED))
    return 0.0, 0
