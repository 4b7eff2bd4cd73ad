"""Entities from the fine-tuned encoder's token-classification head (BIO over word pieces).

``nlu.finetune`` trains the head beside the intent objective on the same encoder (one shared encoder, two heads)
and exports it as the encoder's second ONNX output; ``OnnxSentenceFeaturizer`` with ``entities: true`` runs the
encoder once per parsed message and leaves the pieces' logits on it; this component turns them into Rasa entities
with exact character spans (:func:`nlu.bio.decode`: the tokenizer's own offsets, so punctuation, non-ASCII text
and spans that do not follow whitespace come out as they were annotated). ``EntitySynonymMapper`` after it maps
values as for any extractor. The head itself is trained with the encoder; training this component only collects
the training data's lookup tables and regexes of entity types (Rasa's ``pattern_utils.extract_patterns``, as its
``RegexEntityExtractor`` does), which the CRF reads as features: a match is an entity where the head tagged none of
its characters, and replaces the head's spans of the same type inside it ("apple pay" over a tagged "apple").
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.nlu.utils import pattern_utils
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.bio import OPENING_INSIDE, decode, softmax
from nlu.components.onnx_featurizer import PIECES_KEY

logger = logging.getLogger(__name__)


PATTERNS_FILE = "patterns.json"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class BioEntityExtractor(GraphComponent, EntityExtractorMixin):
    """Tags entity spans with the encoder's entity head (needs ``OnnxSentenceFeaturizer`` with ``entities: true``
    before it), completed by the training data's lookup tables and regexes."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "min_confidence": 0.0,  # spans whose pieces' mean label probability is lower are dropped
            "opening_inside": OPENING_INSIDE,  # what an I- label that opens a span costs (nlu.bio.best_path)
            "use_lookup_tables": True,  # lookup tables and regexes named like an entity type complete the spans
            "use_regexes": True,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage | None = None,
        resource: Resource | None = None,
        patterns: list[dict[str, str]] | None = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.patterns = [(p["name"], re.compile(p["pattern"], re.IGNORECASE)) for p in patterns or []]
        self._warned = False

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> BioEntityExtractor:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """Keep the lookup tables and regexes of entity types (the head was trained with the encoder)."""
        patterns = pattern_utils.extract_patterns(
            training_data,
            use_lookup_tables=bool(self.config["use_lookup_tables"]),
            use_regexes=bool(self.config["use_regexes"]),
            use_only_entities=True,
        )
        assert self._model_storage is not None and self._resource is not None
        with self._model_storage.write_to(self._resource) as folder:
            (folder / PATTERNS_FILE).write_text(json.dumps(patterns, ensure_ascii=False))
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> BioEntityExtractor:
        with model_storage.read_from(resource) as folder:
            patterns = json.loads((folder / PATTERNS_FILE).read_text())
        return cls(config, model_storage, resource, patterns)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            pieces = message.data.pop(PIECES_KEY, None)
            if pieces is None:
                if message.get(TEXT) and not self._warned:
                    logger.warning(
                        "BioEntityExtractor: the message has no entity logits: put OnnxSentenceFeaturizer with "
                        "`entities: true` (a fine-tuned encoder with an entity head) before it"
                    )
                    self._warned = True
                continue
            text = message.get(TEXT)
            spans = decode(
                pieces["offsets"],
                pieces["word_ids"],
                [softmax(row) for row in pieces["logits"].tolist()],
                pieces["labels"],
                float(self.config["opening_inside"]),
            )
            found = [
                span.as_entity(text)
                for span in spans
                if span.confidence >= float(self.config["min_confidence"])
            ]
            found = with_patterns(found, self.patterns, text)
            if found:
                message.set(
                    ENTITIES, message.get(ENTITIES, []) + self.add_extractor_name(found), add_to_output=True
                )
        return messages


def with_patterns(
    found: list[dict[str, Any]], patterns: list[tuple[str, re.Pattern]], text: str
) -> list[dict[str, Any]]:
    """The head's entities completed by pattern matches: a match whose characters no entity covers is added; one
    that covers all the entities it overlaps, each of its own type, replaces them; any other is left out."""
    out = list(found)
    for name, pattern in patterns:
        for match in pattern.finditer(text):
            start, end = match.span()
            if start == end:
                continue
            overlapping = [e for e in out if e["start"] < end and e["end"] > start]
            if overlapping and not all(
                e["entity"] == name and start <= e["start"] and e["end"] <= end for e in overlapping
            ):
                continue
            out = [e for e in out if e not in overlapping]
            out.append({"entity": name, "start": start, "end": end, "value": text[start:end]})
    return sorted(out, key=lambda e: e["start"])
