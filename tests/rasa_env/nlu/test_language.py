"""LanguageDetector inside Rasa's graph API: whole sentences in other languages become unsupported_language
(offline: lingua's models are in its wheel), short English that detectors misread and lone foreign
greetings do not, and FallbackClassifier then leaves the marked intent alone."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from nlu.components.language import UNSUPPORTED_LANGUAGE, LanguageDetector, latin_share

CONFIG = {"languages": ["en", "de", "fr", "es", "nl", "it", "pt", "pl", "sv", "da", "tr"]}


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> LanguageDetector:
    storage = LocalModelStorage(tmp_path_factory.mktemp("models"))
    return LanguageDetector.load(
        CONFIG, storage, Resource("language"), ExecutionContext(node_name="language", graph_schema=None)
    )


def parsed(detector: LanguageDetector, text: str, intent: str = "track_order") -> Message:
    message = Message(data={TEXT: text})
    message.set(INTENT, {"name": intent, "confidence": 0.55})
    message.set(
        INTENT_RANKING_KEY, [{"name": intent, "confidence": 0.55}, {"name": "greet", "confidence": 0.5}]
    )
    return detector.process([message])[0]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Wo ist meine Bestellung? Ich warte schon seit zwei Wochen.", "de"),
        ("Bonjour, combien de temps prend la livraison en Belgique ?", "fr"),
        ("Hola, ¿puedo devolver unas botas después de 30 días?", "es"),
        ("Kan ik mijn bestelling van gisteren nog annuleren?", "nl"),
        ("Ich möchte meine Bestellung stornieren", "de"),
        ("Где мой заказ? Я жду уже две недели.", "xx"),  # another script
    ],
)
def test_sentences_in_other_languages_are_marked(detector, text, code):
    message = parsed(detector, text)
    assert message.get(INTENT) == {"name": UNSUPPORTED_LANGUAGE, "confidence": 1.0}
    assert message.get(INTENT_RANKING_KEY) == [message.get(INTENT)]
    assert message.get("language")["code"] == code


@pytest.mark.parametrize(
    "text",
    [
        "gracias",
        "bonjour",
        "danke!",
        "ok ta",
        "thx",
        "status of ORD-200011?",
        "status ord 20071 pls",
        "waht is the trackign number",
        "ok I'll sort it with DHL then, thx",
        "is there an office in utrecht I can walk into?",
        "can I speak to someone in German please?",
        "whats the min and max order for klarna pay in 3",
    ],
)
def test_short_or_english_messages_keep_the_classifiers_intent(detector, text):
    message = parsed(detector, text)
    assert message.get(INTENT)["name"] == "track_order" and message.get("language") is None


def test_the_fallback_classifier_keeps_the_marked_intent(detector):
    fallback = FallbackClassifier(
        {**FallbackClassifier.get_default_config(), "threshold": 0.7, "ambiguity_threshold": 0.1}
    )
    (message,) = fallback.process([parsed(detector, "Kan ik mijn bestelling van gisteren nog annuleren?")])
    assert message.get(INTENT)["name"] == UNSUPPORTED_LANGUAGE


def test_a_misconfigured_language_list_is_refused():
    with pytest.raises(InvalidConfigException, match="unknown language code"):
        LanguageDetector({"languages": ["en", "klingon"]})
    with pytest.raises(InvalidConfigException, match="supported"):
        LanguageDetector({"languages": ["de", "fr"]})


def test_latin_share():
    assert latin_share("hello") == 1.0 and latin_share("12345") == 1.0 and latin_share("привет") == 0.0
