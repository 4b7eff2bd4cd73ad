"""Marks messages written in a language the bot does not speak: intent ``unsupported_language``.

Placed after the intent classifier and before ``FallbackClassifier`` (``nlu/configs/ours.yml``): when a message
is clearly not English, its intent becomes ``unsupported_language`` with confidence 1.0 (the classifier's
ranking, of a language it was not trained on, is dropped), and a rule answers with ``utter_unsupported_language``, which says in English which
language the bot speaks. The detected language is in the parse result (``language``: ISO 639-1 code).

Detection is offline: lingua (``lingua-language-detector``) ships its n-gram models inside the wheel, and is
restricted to ``languages`` (the supported one and those customers are likely to write). Short messages are
where detectors go wrong ("ok ta", "thx", "status of ORD-200011?" read as Estonian or Danish), so a message
counts only with at least ``min_words`` words and a confidence of at least ``min_confidence``; a lone foreign
greeting or thanks ("gracias", "bonjour") stays ordinary chitchat for the classifier. A message mostly in a
script the supported languages do not use (Cyrillic, Arabic, CJK...) counts whatever its length.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

UNSUPPORTED_LANGUAGE = "unsupported_language"
LANGUAGE_KEY = "language"
_WORD = re.compile(r"[^\W\d_]{2,}")


def latin_share(text: str) -> float:
    """The share of the letters of ``text`` that are Latin (1.0 for a text without letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    return sum(unicodedata.name(c, "").startswith("LATIN") for c in letters) / len(letters)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class LanguageDetector(GraphComponent):
    """Sets the intent ``unsupported_language`` on messages clearly written in another language."""

    @staticmethod
    def required_packages() -> list[str]:
        return ["lingua"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "supported": ["en"],  # ISO 639-1 codes of the languages the bot answers in
            # the languages told apart (the supported ones included); more costs memory and load time
            "languages": ["en", "de", "fr", "es", "nl", "it", "pt", "pl", "sv", "da", "tr"],
            "min_words": 3,  # fewer words: never marked (short messages fool every detector)
            "min_confidence": 0.7,  # lingua's confidence in the top (unsupported) language
            "intent": UNSUPPORTED_LANGUAGE,
            "preload": False,  # load the models with the Rasa model (else at the first message)
        }

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = {**self.get_default_config(), **config}
        from lingua import IsoCode639_1, Language

        def language(code: str) -> Any:
            try:
                return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
            except ValueError as exc:
                raise InvalidConfigException(f"LanguageDetector: unknown language code {code!r}") from exc

        self._languages = [language(code) for code in self.config["languages"]]
        self._supported = {language(code) for code in self.config["supported"]}
        if len(self._languages) < 2 or not self._supported <= set(self._languages):
            raise InvalidConfigException(
                "LanguageDetector: `languages` needs at least two languages, the `supported` ones among them"
            )
        self._detector: Any = None
        if self.config["preload"]:
            self._build()

    def _build(self) -> Any:
        if self._detector is None:
            from lingua import LanguageDetectorBuilder

            builder = LanguageDetectorBuilder.from_languages(*self._languages)
            if self.config["preload"]:
                builder = builder.with_preloaded_language_models()
            self._detector = builder.build()
        return self._detector

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LanguageDetector:
        return cls({**config, "preload": False})  # training never parses with it

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LanguageDetector:
        return cls(config)

    def detect(self, text: str) -> tuple[str, float] | None:
        """``(ISO 639-1 code, confidence)`` when ``text`` is clearly in an unsupported language, else None."""
        if latin_share(text) < 0.5:
            return ("xx", 1.0)  # another script: none of the supported languages
        if len(_WORD.findall(text)) < int(self.config["min_words"]):
            return None
        values = self._build().compute_language_confidence_values(text)
        if not values:
            return None
        top = values[0]
        if top.language in self._supported or top.value < float(self.config["min_confidence"]):
            return None
        return top.language.iso_code_639_1.name.lower(), float(top.value)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if not text.strip() or text.lstrip().startswith("/"):  # "/intent" payloads (buttons) are no text
                continue
            found = self.detect(text)
            if found is None:
                continue
            code, confidence = found
            marked = {INTENT_NAME_KEY: self.config["intent"], PREDICTED_CONFIDENCE_KEY: 1.0}
            # the classifier's ranking read a language it was not trained on: it goes (and so the
            # FallbackClassifier's ambiguity check cannot fire on it)
            message.set(INTENT, marked, add_to_output=True)
            message.set(INTENT_RANKING_KEY, [marked], add_to_output=True)
            message.set(LANGUAGE_KEY, {"code": code, "confidence": round(confidence, 3)}, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
