"""Is there an answer in the knowledge base at all? A calibrated answerability score for the router.

The best dense similarity alone separates answerable from unanswerable questions badly (an off-topic
question about a store still lands near the store article). :func:`features` describes one retrieval
with signals that disagree in the right cases:

- ``dense_top``: cosine similarity of the best chunk;
- ``dense_margin``: how far the best chunk is ahead of the best chunk of another document;
- ``coverage``: idf-weighted share of the question's terms found in one of the top chunks;
- ``unknown``: idf-weighted share of the question's content terms (grounding's stop words left out) that no
  chunk of the tenant uses at all (unanswerable questions tend to hinge on one such word: *parking*,
  *registry*, *refurbished*; a small tenant's articles lack filler such as *now*, which says nothing);
- ``bm25_top``: the best BM25 score divided by the question's total idf (scale-free);
- ``agreement``: 1 when the dense and BM25 retrievers put the same document first.

:class:`AnswerabilityModel` is a logistic regression over the standardised features, so its output is
a probability. It is fitted by :mod:`knowledge.calibration` on questions that are *not* the evaluation
set (the hand-written dev set ``knowledge/eval/dev.yml``) and stored as plain JSON (``answerability.json``)
in the index. Without a fitted model the confidence is the best dense similarity (:class:`DenseScoreModel`).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.retrievers import BM25Retriever, Retrieval

FEATURES = ("dense_top", "dense_margin", "coverage", "unknown", "bm25_top", "agreement")
#: The features the fitted model uses: three cheap ones whose 5-fold cross-validated AUC on the dev
#: questions (0.960) is within 0.005 of the best subset of up to four features (0.962); the lexical
#: coverage features looked good on dev but transferred worst to paraphrased questions.
MODEL_FEATURES = ("dense_top", "dense_margin", "unknown")
MODEL_FILE = "answerability.json"
#: Top chunks (of each retriever) whose terms count for ``coverage``.
COVERAGE_CHUNKS = 3


def features(
    retrieval: Retrieval, chunks: Sequence[Any], bm25: BM25Retriever, tenant: str
) -> dict[str, float]:
    """The answerability features of one retrieval (zeros when nothing was retrieved)."""
    dense, lexical = retrieval.dense, retrieval.bm25
    dense_top = dense[0].score if dense else 0.0
    top_doc = chunks[dense[0].position].doc_id if dense else None
    other = next((item.score for item in dense if chunks[item.position].doc_id != top_doc), None)
    margin = dense_top - other if dense and other is not None else 0.0
    terms = retrieval.query_terms
    weights = {term: bm25.idf(term, tenant) for term in terms}
    total = sum(weights.values())
    candidates = [item.position for item in dense[:COVERAGE_CHUNKS]] + [
        item.position for item in lexical[:COVERAGE_CHUNKS]
    ]
    coverage = 0.0
    if total > 0:
        for position in candidates:
            found = bm25.chunk_terms(position)
            coverage = max(coverage, sum(w for term, w in weights.items() if term in found) / total)
    # over the content words only: "now", "just", "again" in no article say nothing about the question's subject
    stop = _stop_stems(bm25.stemmer)
    content = {term: w for term, w in weights.items() if term not in stop} or weights
    content_total = sum(content.values())
    unknown = (
        sum(w for term, w in content.items() if not bm25.known(term, tenant)) / content_total
        if content_total > 0
        else 1.0
    )
    bm25_top = lexical[0].score / total if lexical and total > 0 else 0.0
    agreement = float(
        bool(dense)
        and bool(lexical)
        and chunks[dense[0].position].doc_id == chunks[lexical[0].position].doc_id
    )
    return {
        "dense_top": float(dense_top),
        "dense_margin": float(margin),
        "coverage": float(coverage),
        "unknown": float(unknown),
        "bm25_top": float(bm25_top),
        "agreement": agreement,
    }


@functools.cache
def _stop_stems(stemmer: Any) -> frozenset[str]:
    """Grounding's English stop words (:func:`knowledge.grounding.stopwords`), stemmed as BM25's terms are."""
    from knowledge.grounding import stopwords

    return frozenset(stemmer.stemWords(sorted(stopwords())))


class DenseScoreModel:
    """The fallback "model": the confidence is the best dense similarity itself."""

    kind = "dense_score"

    def predict(self, values: Mapping[str, float]) -> float:
        return float(values.get("dense_top", 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass
class LogisticModel:
    """A logistic regression on standardised named features, stored as plain JSON (never pickle).

    :class:`AnswerabilityModel` and the passage ranker (:mod:`knowledge.rerank`) are both this; :meth:`fit` fits
    one with scikit-learn.
    """

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    info: dict[str, Any] = field(default_factory=dict)
    kind: str = "logistic"

    def predict(self, values: Mapping[str, float]) -> float:
        x = (np.asarray([values.get(name, 0.0) for name in self.features]) - self.mean) / self.scale
        z = float(np.dot(self.coef, x) + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "features": self.features,
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
            "info": self.info,
        }

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, feature_names: Sequence[str], *, c: float = 1.0) -> Any:
        """A class-balanced logistic regression (inverse L2 strength ``c``) of ``y`` on standardised ``x``."""
        from sklearn.linear_model import LogisticRegression

        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        regression = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
        regression.fit((x - mean) / scale, y)
        return cls(
            features=list(feature_names),
            mean=mean.tolist(),
            scale=scale.tolist(),
            coef=regression.coef_[0].tolist(),
            intercept=float(regression.intercept_[0]),
        )

    @classmethod
    def read(cls, path: Path) -> Any:
        """The model stored at ``path`` (as an instance of ``cls``)."""
        data = json.loads(Path(path).read_text())
        return cls(
            features=list(data["features"]),
            mean=list(data["mean"]),
            scale=list(data["scale"]),
            coef=list(data["coef"]),
            intercept=float(data["intercept"]),
            info=dict(data.get("info") or {}),
        )


@dataclass
class AnswerabilityModel(LogisticModel):
    """Logistic regression on standardised :data:`FEATURES`: ``P(answerable | features)``."""

    def save(self, folder: Path) -> Path:
        return self.write(Path(folder) / MODEL_FILE)


def load_model(index_dir: Path | str) -> AnswerabilityModel | DenseScoreModel:
    """The index's fitted model, or :class:`DenseScoreModel` when it has none."""
    path = Path(index_dir) / MODEL_FILE
    if not path.is_file():
        return DenseScoreModel()
    return AnswerabilityModel.read(path)
