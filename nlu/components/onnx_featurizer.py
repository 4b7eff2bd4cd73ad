"""Dense sentence features from the MiniLM encoder exported to ONNX (``pipelines/export_encoder.py``).

The encoder graph already does sentence-transformers' mean pooling and L2 normalisation, so each message
gets one 384-d sentence feature (no sequence features: our classifier needs none, and CRF uses its own).
Training copies ``model.onnx`` and ``tokenizer.json`` from ``model_dir`` into the component's Resource,
so the trained model tarball is self-contained and ``rasa run`` never looks at ``model_dir``.
Training data is embedded in length-sorted batches with every core; a served message runs on one
thread (for one short sentence that is faster than two on these machines: measured in export_encoder).

With ``entities: true`` the encoder must be a fine-tuned one with an entity head (``entities.json`` beside the
model): the same run of the encoder that embeds a parsed message gives its word pieces' entity logits, which the
featurizer leaves on the message (:data:`PIECES_KEY`) for ``nlu.components.bio_entities.BioEntityExtractor``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.onnx_export import ENTITIES_FILE, MODEL_FILE, TOKENIZER_FILE, OnnxEncoder

logger = logging.getLogger(__name__)

#: Where a parsed message carries its word pieces' entity logits, offsets and word ids (the extractor removes it).
PIECES_KEY = "onnx_entity_pieces"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class OnnxSentenceFeaturizer(DenseFeaturizer, GraphComponent):
    """Sentence embeddings (MiniLM, ONNX) as dense sentence features of the ``text`` attribute."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            **DenseFeaturizer.get_default_config(),
            # folder with model.onnx and tokenizer.json (export_encoder's output); read at training only
            "model_dir": "nlu/build/encoder",
            # frozen: export_encoder's MiniLM; finetuned: MiniLM fine-tuned on the training data by nlu/finetune.py
            # (main environment), whose folder the config renderer writes into model_dir
            "encoder": "frozen",
            # content hash of the encoder files, filled in by the config renderer: it is part of Rasa's
            # cache key, so a re-exported encoder is never mixed up with a cached one
            "encoder_sha256": None,
            "batch_size": 64,
            "batch_threads": 0,  # 0: onnxruntime's default (all cores)
            "single_threads": 1,
            # true: the fine-tuned encoder's entity head tags each parsed message (BioEntityExtractor reads it)
            "entities": False,
        }

    @classmethod
    def required_packages(cls) -> list[str]:
        return ["onnxruntime", "tokenizers"]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if not config.get("model_dir"):
            raise InvalidConfigException(
                "OnnxSentenceFeaturizer needs `model_dir` (export_encoder's output)."
            )
        if config.get("encoder", "frozen") not in ("frozen", "finetuned"):
            raise InvalidConfigException(
                f"OnnxSentenceFeaturizer: encoder {config.get('encoder')!r} is not one of frozen, finetuned."
            )
        if config.get("entities") and config.get("encoder", "frozen") != "finetuned":
            raise InvalidConfigException("OnnxSentenceFeaturizer: entities: true needs encoder: finetuned.")

    def __init__(
        self,
        config: dict[str, Any],
        name: str,
        model_storage: ModelStorage,
        resource: Resource,
        encoder: OnnxEncoder | None = None,
    ) -> None:
        super().__init__(name, config)
        self._model_storage = model_storage
        self._resource = resource
        self._encoder = encoder

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> OnnxSentenceFeaturizer:
        return cls(
            {**cls.get_default_config(), **config}, execution_context.node_name, model_storage, resource
        )

    def train(self, training_data: TrainingData) -> Resource:
        """Copy the encoder files into this component's Resource (the model tarball carries them)."""
        source = Path(self._config["model_dir"])
        missing = [f for f in (MODEL_FILE, TOKENIZER_FILE) if not (source / f).is_file()]
        if missing:
            raise InvalidConfigException(
                f"OnnxSentenceFeaturizer: {', '.join(missing)} not found in {source.resolve()}: "
                f"run the export_encoder stage (dvc repro export_encoder) first."
            )
        files = [MODEL_FILE, TOKENIZER_FILE]
        if self._config["entities"]:
            if not (source / ENTITIES_FILE).is_file():
                raise InvalidConfigException(
                    f"OnnxSentenceFeaturizer: entities: true, but the encoder in {source.resolve()} has no entity "
                    f"head ({ENTITIES_FILE}): fine-tune it with this config (nlu.finetune)."
                )
            files.append(ENTITIES_FILE)
        with self._model_storage.write_to(self._resource) as folder:
            for name in files:
                shutil.copyfile(source / name, folder / name)
        return self._resource

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> OnnxSentenceFeaturizer:
        config = {**cls.get_default_config(), **config}
        with model_storage.read_from(resource) as folder:
            encoder = OnnxEncoder.from_dir(
                folder,
                batch_threads=int(config["batch_threads"]),
                single_threads=int(config["single_threads"]),
            )
        return cls(config, execution_context.node_name, model_storage, resource, encoder)

    def _featurize(self, messages: list[Message]) -> None:
        assert self._encoder is not None, "OnnxSentenceFeaturizer used before training or loading"
        todo = [m for m in messages if m.get(TEXT)]
        if not todo:
            return
        vectors = self._encoder.encode([m.get(TEXT) for m in todo], int(self._config["batch_size"]))
        for message, vector in zip(todo, vectors, strict=False):
            self.add_features_to_message(None, vector[np.newaxis, :], TEXT, message)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        start = time.perf_counter()
        self._featurize(training_data.training_examples)
        logger.info(
            f"OnnxSentenceFeaturizer: embedded {len(training_data.training_examples)} training messages "
            f"in {time.perf_counter() - start:.1f} s"
        )
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        if not (self._config["entities"] and self._encoder is not None and self._encoder.entity_labels):
            self._featurize(messages)
            return messages
        for message in messages:  # one run each gives the embedding and the entity logits
            if not message.get(TEXT):
                continue
            vector, logits, encoding = self._encoder.encode_tagged(message.get(TEXT))
            self.add_features_to_message(None, vector[np.newaxis, :], TEXT, message)
            message.set(
                PIECES_KEY,
                {
                    "labels": self._encoder.entity_labels,
                    "logits": logits,
                    "offsets": encoding.offsets,
                    "word_ids": encoding.word_ids,
                },
            )
        return messages
