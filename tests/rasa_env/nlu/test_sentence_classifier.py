"""SentenceIntentClassifier inside Rasa's graph API: training, persistence, calibrated rankings, and the
single-message fast path agreeing with the batch path; FallbackClassifier agreeing with nlu.oos.decide."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu import oos
from nlu.components.sentence_classifier import SentenceIntentClassifier

TEXTS = {
    "track_order": [
        "where is my order",
        "track my parcel",
        "has my package shipped",
        "order status please",
        "when will my order arrive",
        "where's my delivery",
    ],
    "greet": ["hello", "hi there", "good morning", "hey", "hello bot", "hi"],
    "refund": [
        "I want my money back",
        "refund please",
        "how do I get a refund",
        "return and refund",
        "give me a refund",
        "money back for my order",
    ],
}


def dense(text: str) -> np.ndarray:
    """A deterministic stand-in for a sentence embedding (hashed characters, unit norm)."""
    vector = np.zeros(16, dtype=np.float32)
    for ch in text.lower():
        vector[ord(ch) % 16] += 1
    return vector / (np.linalg.norm(vector) or 1)


def message(text: str, intent: str | None = None) -> Message:
    msg = Message(data={TEXT: text, **({INTENT: intent} if intent else {})})
    msg.add_features(Features(dense(text)[np.newaxis, :], FEATURE_TYPE_SENTENCE, TEXT, "fake"))
    return msg


@pytest.fixture
def storage(tmp_path) -> LocalModelStorage:
    return LocalModelStorage(tmp_path)


def train(storage, **config) -> SentenceIntentClassifier:
    resource = Resource("clf")
    context = ExecutionContext(node_name="clf", graph_schema=None)
    component = SentenceIntentClassifier.create(
        {**SentenceIntentClassifier.get_default_config(), **config}, storage, resource, context
    )
    data = TrainingData([message(t, intent) for intent, texts in TEXTS.items() for t in texts])
    component.train(data)
    return SentenceIntentClassifier.load(
        {**SentenceIntentClassifier.get_default_config(), **config}, storage, resource, context
    )


def test_trained_and_reloaded_model_ranks_intents_with_probabilities(storage):
    classifier = train(storage)
    (parsed,) = classifier.process([message("where is my parcel")])
    assert parsed.get(INTENT)["name"] == "track_order"
    ranking = parsed.get(INTENT_RANKING_KEY)
    assert [r["name"] for r in ranking][0] == "track_order" and len(ranking) == 3
    assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0, abs=1e-5)
    assert ranking == sorted(ranking, key=lambda r: -r["confidence"])


def test_single_message_path_equals_batch_path(storage):
    classifier = train(storage)
    texts = ["refund my order", "hello there", "zzz unknown words", "my package"]
    batch = classifier.predict_proba([message(t) for t in texts])
    single = np.vstack([classifier.predict_proba([message(t)]) for t in texts])
    np.testing.assert_allclose(single, batch, rtol=1e-4, atol=1e-6)


def test_temperature_is_fitted_on_held_out_data(storage, tmp_path):
    calibrated = train(storage, calibration_holdout=0.34)
    (tmp_path / "plain").mkdir()
    plain = train(LocalModelStorage(tmp_path / "plain"), calibration_holdout=0.0)
    assert plain._state["temperature"] == 1.0
    assert calibrated._state["temperature"] != 1.0


def test_works_without_dense_features_on_ngrams_alone(storage):
    resource, context = Resource("clf"), ExecutionContext(node_name="clf", graph_schema=None)
    component = SentenceIntentClassifier.create(
        SentenceIntentClassifier.get_default_config(), storage, resource, context
    )
    data = TrainingData([Message(data={TEXT: t, INTENT: i}) for i, texts in TEXTS.items() for t in texts])
    component.train(data)
    (parsed,) = component.process([Message(data={TEXT: "hello there"})])
    assert parsed.get(INTENT)["name"] == "greet"


@pytest.mark.parametrize(("threshold", "ambiguity"), [(0.3, 0.1), (0.5, 0.0), (0.6, 0.25), (0.0, 0.3)])
def test_fallback_classifier_agrees_with_nlu_oos_decide(threshold, ambiguity):
    fallback = FallbackClassifier({"threshold": threshold, "ambiguity_threshold": ambiguity})
    for ranking in ([("a", 0.55), ("b", 0.40)], [("a", 0.35), ("b", 0.30)], [("a", 0.9), ("b", 0.05)]):
        msg = Message(data={TEXT: "x"})
        msg.set(INTENT, {"name": ranking[0][0], "confidence": ranking[0][1]})
        msg.set(INTENT_RANKING_KEY, [{"name": n, "confidence": c} for n, c in ranking])
        (out,) = fallback.process([msg])
        assert out.get(INTENT)["name"] == oos.decide(ranking, threshold, ambiguity)


def test_the_classifier_holds_out_what_finetune_leaves_out(storage, monkeypatch):
    """The bot's NLU data read by Rasa's loader (the classifier's side) and by nlu/finetune.py's reader (the
    encoder's side): the same examples are the calibration share, so a fine-tuned encoder never learns them."""
    from pathlib import Path

    from rasa.shared.nlu.training_data.loading import load_data

    import nlu.components.sentence_classifier as module
    from nlu.calibration import calibration_holdout
    from nlu.finetune import calibration_share, read_annotated

    root = Path(__file__).resolve().parents[3]
    loaded = load_data(str(root / "nlu" / "data" / "nlu"))
    chosen = []

    def recording(examples, fraction, seed):
        mask = calibration_holdout(examples, fraction, seed)
        chosen.append({text for (text, _), held in zip(examples, mask, strict=True) if held})
        return mask

    monkeypatch.setattr(module, "calibration_holdout", recording)
    examples = [m for m in loaded.intent_examples if m.get(TEXT) and m.get(INTENT)]
    train_data = TrainingData([message(m.get(TEXT), m.get(INTENT)) for m in examples])
    resource, context = Resource("clf"), ExecutionContext(node_name="clf", graph_schema=None)
    SentenceIntentClassifier.create(
        SentenceIntentClassifier.get_default_config(), storage, resource, context
    ).train(train_data)

    pairs = [
        (text, intent)
        for path in sorted((root / "nlu" / "data" / "nlu").glob("*.yml"))
        for text, intent, _ in read_annotated(path)
    ]
    share = calibration_share(root / "nlu" / "configs" / "ours_ft_bio.yml")
    finetune_side = {
        text for (text, _), held in zip(pairs, calibration_holdout(pairs, *share), strict=True) if held
    }
    assert len(chosen) == 1 and len(chosen[0]) > 100
    assert chosen[0] == finetune_side
