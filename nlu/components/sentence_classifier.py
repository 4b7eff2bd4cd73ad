"""Intent classifier: calibrated logistic regression on [sentence embedding ; TF-IDF word + char n-grams].

Dense sentence features come from the featurizers before it (``OnnxSentenceFeaturizer``); the TF-IDF
n-grams are computed here from the raw text, vectorised over the whole training set at once (Rasa's
``CountVectorsFeaturizer`` builds one sparse matrix per message and token, far slower on 15k examples).
Confidences are the model's softmax with one temperature fitted on a stratified hold-out of the training
data (minimum negative log-likelihood; :mod:`nlu.calibration` chooses it, and a fine-tuned encoder is not
trained on it), then the model is refitted on everything. The ranking holds
``ranking_length`` intents with those calibrated confidences; FallbackClassifier thresholds the top one.

Everything is persisted as plain arrays and JSON (no pickle): vocabularies, IDF weights, coefficients
and the temperature. Prediction is numpy (a sparse-dense product and a softmax).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.calibration import DEFAULT_FRACTION, DEFAULT_SEED, calibration_holdout

logger = logging.getLogger(__name__)

ARRAYS_FILE = "arrays.npz"
META_FILE = "meta.json"


class TfidfNgrams:
    """Sublinear TF-IDF over word or character n-grams with a fixed vocabulary, rows L2-normalised.

    Fitting uses scikit-learn's ``CountVectorizer``; the state is the vocabulary (JSON) and IDF weights,
    so a saved model does not depend on scikit-learn's pickled internals.
    """

    def __init__(
        self,
        analyzer: str,
        ngram_range: tuple[int, int],
        min_df: int = 1,
        vocabulary: dict[str, int] | None = None,
        idf: np.ndarray | None = None,
    ) -> None:
        self.analyzer, self.ngram_range, self.min_df = analyzer, tuple(ngram_range), min_df
        self.vocabulary, self.idf = vocabulary, idf

    def _vectorizer(self, vocabulary: dict[str, int] | None = None):
        from sklearn.feature_extraction.text import CountVectorizer

        return CountVectorizer(
            analyzer=self.analyzer,
            ngram_range=self.ngram_range,
            lowercase=True,
            min_df=1 if vocabulary else self.min_df,
            vocabulary=vocabulary,
            dtype=np.float32,
        )

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        vectorizer = self._vectorizer()
        counts = vectorizer.fit_transform(texts).tocsr()
        self.vocabulary = {term: int(i) for term, i in vectorizer.vocabulary_.items()}
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        self.idf = (np.log((1 + counts.shape[0]) / (1 + df)) + 1).astype(np.float32)
        return self._weight(counts)

    def counts(self, texts: list[str]) -> sp.csr_matrix:
        """Raw n-gram counts over the fixed vocabulary (the vectoriser is built once and kept)."""
        if getattr(self, "_fixed", None) is None:
            self._fixed = self._vectorizer(self.vocabulary)
        return self._fixed.transform(texts).tocsr()

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        return self._weight(self.counts(texts))

    def weights(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, TF-IDF weights) of one text: the fast path for a single served message."""
        row = self.counts([text])
        values = (1 + np.log(row.data)) * self.idf[row.indices]
        norm = float(np.sqrt(np.dot(values, values))) or 1.0
        return row.indices, values / norm

    def _weight(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        counts = counts.astype(np.float32)
        counts.data = 1 + np.log(counts.data)
        weighted = counts.multiply(self.idf[np.newaxis, :]).tocsr()
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1
        return sp.csr_matrix(sp.diags(1 / norms) @ weighted, dtype=np.float32)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits / temperature
    scaled = scaled - scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of ``labels`` (held-out data)."""
    from scipy.optimize import minimize_scalar

    def nll(t: float) -> float:
        probs = softmax(logits, t)
        return float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-12)))

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class SentenceIntentClassifier(IntentClassifier, GraphComponent):
    """Calibrated logistic regression over dense sentence features and TF-IDF n-grams of the text."""

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def required_packages() -> list[str]:
        return ["sklearn", "scipy"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "C": 20.0,  # inverse L2 strength of the logistic regression
            "max_iter": 3000,
            "dense_weight": 1.0,  # scale of the (unit-norm) sentence embedding against the TF-IDF blocks
            "featurizers": [],  # dense featurizers to read (empty: all)
            "word_ngrams": [1, 2],  # [] turns the word block off
            "char_ngrams": [2, 5],  # char_wb n-grams; [] turns the block off
            "char_min_df": 2,
            # share held out to fit the temperature (nlu.calibration: by text, and left out of a fine-tuned
            # encoder's training too); 0: no calibration (T = 1)
            "calibration_holdout": DEFAULT_FRACTION,
            "ranking_length": 10,
            "random_state": DEFAULT_SEED,
        }

    def __init__(
        self,
        config: dict[str, Any],
        name: str,
        model_storage: ModelStorage,
        resource: Resource,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._state = state

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> SentenceIntentClassifier:
        return cls(config, execution_context.node_name, model_storage, resource)

    # --- features -------------------------------------------------------------------------------------
    def _dense(self, messages: list[Message]) -> np.ndarray | None:
        rows = []
        for message in messages:
            _, sentence = message.get_dense_features(TEXT, self.config["featurizers"] or None)
            rows.append(None if sentence is None else np.asarray(sentence.features).reshape(-1))
        if all(r is None for r in rows):
            return None
        width = next(r.shape[0] for r in rows if r is not None)
        return np.vstack([r if r is not None else np.zeros(width, np.float32) for r in rows]).astype(
            np.float32
        )

    def _matrix(self, messages: list[Message], blocks: list[TfidfNgrams], fit: bool) -> sp.csr_matrix:
        texts = [m.get(TEXT) or "" for m in messages]
        parts = []
        dense = self._dense(messages)
        if dense is not None:
            parts.append(sp.csr_matrix(dense * float(self.config["dense_weight"])))
        for block in blocks:
            parts.append(block.fit_transform(texts) if fit else block.transform(texts))
        if not parts:
            raise ValueError(
                "SentenceIntentClassifier: no features (no dense featurizer and no n-gram block)"
            )
        return sp.hstack(parts, format="csr", dtype=np.float32)

    def _blocks(self) -> list[TfidfNgrams]:
        blocks = []
        if self.config["word_ngrams"]:
            blocks.append(TfidfNgrams("word", tuple(self.config["word_ngrams"])))
        if self.config["char_ngrams"]:
            blocks.append(
                TfidfNgrams("char_wb", tuple(self.config["char_ngrams"]), int(self.config["char_min_df"]))
            )
        return blocks

    def _fit(self, X: sp.csr_matrix, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fit the logistic regression; return (coef, intercept) with one row per class (also for two)."""
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(
            C=float(self.config["C"]),
            max_iter=int(self.config["max_iter"]),
            random_state=int(self.config["random_state"]),
        ).fit(X, y)
        coef, intercept = model.coef_, model.intercept_
        if coef.shape[0] == 1:  # binary: sigmoid(w.x + b) == softmax([0, w.x + b])
            coef = np.vstack([np.zeros_like(coef), coef])
            intercept = np.concatenate([[0.0], intercept])
        return coef.astype(np.float32), intercept.astype(np.float32)

    @staticmethod
    def _logits(X: sp.csr_matrix, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        return np.asarray(X @ coef.T) + intercept

    # --- training -------------------------------------------------------------------------------------
    def train(self, training_data: TrainingData) -> Resource:
        examples = [m for m in training_data.intent_examples if m.get(TEXT) and m.get(INTENT)]
        intents = sorted({m.get(INTENT) for m in examples})
        if len(intents) < 2:
            logger.warning(
                "SentenceIntentClassifier: fewer than two intents in the training data; not trained."
            )
            return self._resource
        start = time.perf_counter()
        labels = np.array([intents.index(m.get(INTENT)) for m in examples])
        temperature = 1.0
        holdout = float(self.config["calibration_holdout"])
        if holdout > 0:
            mask = calibration_holdout(
                [(m.get(TEXT), m.get(INTENT)) for m in examples], holdout, int(self.config["random_state"])
            )
            rest, held = np.flatnonzero(~mask), np.flatnonzero(mask)
            if len(held) and len(np.unique(labels[rest])) == len(intents):
                blocks = self._blocks()
                coef, intercept = self._fit(
                    self._matrix([examples[i] for i in rest], blocks, fit=True), labels[rest]
                )
                held_x = self._matrix([examples[i] for i in held], blocks, fit=False)
                temperature = fit_temperature(self._logits(held_x, coef, intercept), labels[held])
        blocks = self._blocks()
        X = self._matrix(examples, blocks, fit=True)
        coef, intercept = self._fit(X, labels)
        n_dense = X.shape[1] - sum(len(b.vocabulary or {}) for b in blocks)
        self._state = {
            "intents": intents,
            "temperature": temperature,
            "n_dense": int(n_dense),
            "blocks": blocks,
            "coef": coef,
            "intercept": intercept,
        }
        logger.info(
            f"SentenceIntentClassifier: {len(examples)} examples, {len(intents)} intents, "
            f"{X.shape[1]} features, temperature {temperature:.3f}, "
            f"{time.perf_counter() - start:.1f} s"
        )
        self.persist()
        return self._resource

    # --- prediction -----------------------------------------------------------------------------------
    def predict_proba(self, messages: list[Message]) -> np.ndarray:
        """Calibrated intent probabilities, one row per message (columns: ``self._state["intents"]``)."""
        assert self._state is not None
        state = self._state
        if len(messages) != 1:
            X = self._matrix(messages, state["blocks"], fit=False)
            return softmax(self._logits(X, state["coef"], state["intercept"]), state["temperature"])
        # one served message: gather the coefficients of its n-grams instead of building sparse matrices
        coef, offset = state["coef"], state["n_dense"]
        logits = state["intercept"].astype(np.float64).copy()
        if offset:
            dense = self._dense(messages)
            if dense is not None:
                logits += coef[:, :offset] @ (dense[0] * float(self.config["dense_weight"]))
        text = messages[0].get(TEXT) or ""
        for block in state["blocks"]:
            indices, values = block.weights(text)
            if len(indices):
                logits += coef[:, offset + indices] @ values
            offset += len(block.vocabulary or {})
        return softmax(logits[np.newaxis, :], state["temperature"])

    def process(self, messages: list[Message]) -> list[Message]:
        if self._state is None:
            for message in messages:
                message.set(
                    INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True
                )
            return messages
        todo = [m for m in messages if m.get(TEXT)]
        probs = self.predict_proba(todo) if todo else np.zeros((0, 0))
        intents = self._state["intents"]
        length = int(self.config["ranking_length"]) or len(intents)
        for message, row in zip(todo, probs, strict=False):
            order = np.argsort(-row)[:length]
            ranking = [{INTENT_NAME_KEY: intents[i], PREDICTED_CONFIDENCE_KEY: float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        for message in messages:
            if not message.get(TEXT):
                message.set(
                    INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True
                )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    # --- persistence ----------------------------------------------------------------------------------
    def persist(self) -> None:
        assert self._state is not None
        state = self._state
        arrays = {"coef": state["coef"], "intercept": state["intercept"]}
        meta: dict[str, Any] = {
            "intents": state["intents"],
            "temperature": state["temperature"],
            "n_dense": state["n_dense"],
            "blocks": [],
        }
        for i, block in enumerate(state["blocks"]):
            arrays[f"idf_{i}"] = block.idf
            meta["blocks"].append(
                {
                    "analyzer": block.analyzer,
                    "ngram_range": list(block.ngram_range),
                    "vocabulary": block.vocabulary,
                }
            )
        with self._model_storage.write_to(self._resource) as folder:
            np.savez_compressed(folder / ARRAYS_FILE, **arrays)
            (folder / META_FILE).write_text(json.dumps(meta))

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> SentenceIntentClassifier:
        try:
            with model_storage.read_from(resource) as folder:
                meta = json.loads((folder / META_FILE).read_text())
                with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
        except (ValueError, FileNotFoundError):
            logger.debug(f"SentenceIntentClassifier: no trained state in '{resource.name}'")
            return cls(config, execution_context.node_name, model_storage, resource)
        blocks = [
            TfidfNgrams(
                b["analyzer"], tuple(b["ngram_range"]), vocabulary=b["vocabulary"], idf=arrays[f"idf_{i}"]
            )
            for i, b in enumerate(meta["blocks"])
        ]
        state = {
            "intents": meta["intents"],
            "temperature": meta["temperature"],
            "n_dense": meta["n_dense"],
            "blocks": blocks,
            "coef": arrays["coef"],
            "intercept": arrays["intercept"],
        }
        return cls(config, execution_context.node_name, model_storage, resource, state)
