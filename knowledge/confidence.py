"""Is there an answer in the knowledge base at all? A calibrated answerability score for the router.

The best dense similarity alone separates answerable from unanswerable questions badly (an off-topic
question about a store still lands near the store article). :func:`features` describes one retrieval
with signals that disagree in the right cases:

- ``dense_top``: cosine similarity of the best chunk;
- ``dense_margin``: how far the best chunk is ahead of the best chunk of another document;
- ``coverage``: idf-weighted share of the question's terms found in one of the top chunks;
- ``unknown``: idf-weighted share of the question's terms that no chunk of the tenant uses at all
  (unanswerable questions tend to hinge on one such word: *parking*, *registry*, *refurbished*);
- ``bm25_top``: the best BM25 score divided by the question's total idf (scale-free);
- ``agreement``: 1 when the dense and BM25 retrievers put the same document first.

:class:`AnswerabilityModel` is a logistic regression over the standardised features, so its output is
a probability. It is fitted with :func:`fit` on questions that are *not* the evaluation set (the
hand-written dev set ``knowledge/eval/dev.yml``; optionally plus "leave-document-out" negatives: each
answerable dev question asked again with its supporting documents hidden has, by construction, no
answer; they made the model worse on held-out questions, so they are off by default), and stored as
plain JSON (``answerability.json``) in the index. Without a fitted model the confidence is
the best dense similarity (:class:`DenseScoreModel`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from knowledge.retrieval import KnowledgeBase
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
    unknown = (
        sum(w for term, w in weights.items() if not bm25.known(term, tenant)) / total if total > 0 else 1.0
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


class DenseScoreModel:
    """The fallback "model": the confidence is the best dense similarity itself."""

    kind = "dense_score"

    def predict(self, values: Mapping[str, float]) -> float:
        return float(values.get("dense_top", 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass
class AnswerabilityModel:
    """Logistic regression on standardised :data:`FEATURES`: ``P(answerable | features)``."""

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

    def save(self, folder: Path) -> Path:
        path = Path(folder) / MODEL_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path


def load_model(index_dir: Path | str) -> AnswerabilityModel | DenseScoreModel:
    """The index's fitted model, or :class:`DenseScoreModel` when it has none."""
    path = Path(index_dir) / MODEL_FILE
    if not path.is_file():
        return DenseScoreModel()
    data = json.loads(path.read_text())
    return AnswerabilityModel(
        features=list(data["features"]),
        mean=list(data["mean"]),
        scale=list(data["scale"]),
        coef=list(data["coef"]),
        intercept=float(data["intercept"]),
        info=dict(data.get("info") or {}),
    )


@dataclass
class Example:
    """One training or evaluation row: a question's features and whether it has an answer."""

    id: str
    values: dict[str, float]
    answerable: bool
    source: str = "dev"


def examples(kb: KnowledgeBase, questions: Sequence[Any], *, leave_out: bool = False) -> list[Example]:
    """Feature rows for ``questions`` (``GoldQuestion``-like); ``leave_out`` adds the hidden-document negatives."""
    rows = []
    for question in questions:
        values = kb.answerability_features(question.question, question.tenant)
        rows.append(Example(question.id, values, question.answerable))
        if leave_out and question.answerable:
            hidden = kb.answerability_features(
                question.question, question.tenant, exclude_docs=question.doc_ids
            )
            rows.append(Example(f"{question.id}/hidden", hidden, False, source="leave_out"))
    return rows


def fit(
    rows: Sequence[Example],
    *,
    c: float = 1.0,
    max_false_idk: float = 0.05,
    feature_names: Sequence[str] = MODEL_FEATURES,
) -> AnswerabilityModel:
    """Fit the logistic model on ``rows`` and record the cut-off the dev questions suggest.

    ``suggested_min_score`` is the highest cut-off at which at most ``max_false_idk`` of the answerable
    dev questions would be refused, i.e. the one that catches the most unanswerable questions while
    keeping "I don't know" rare for answerable ones.
    """
    from sklearn.linear_model import LogisticRegression

    if len({row.answerable for row in rows}) < 2:
        raise ValueError("fitting the answerability model needs answerable and unanswerable questions")
    x = np.asarray([[row.values[name] for name in feature_names] for row in rows], dtype=float)
    y = np.asarray([row.answerable for row in rows], dtype=int)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    regression = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
    regression.fit((x - mean) / scale, y)
    model = AnswerabilityModel(
        features=list(feature_names),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=regression.coef_[0].tolist(),
        intercept=float(regression.intercept_[0]),
    )
    dev = [row for row in rows if row.source == "dev"]
    scores = [model.predict(row.values) for row in dev]
    model.info = {
        "rows": len(rows),
        "dev_questions": len(dev),
        "dev_unanswerable": sum(not row.answerable for row in dev),
        "leave_out_negatives": len(rows) - len(dev),
        "c": c,
        "max_false_idk": max_false_idk,
        "suggested_min_score": suggest_cut_off(scores, [row.answerable for row in dev], max_false_idk),
    }
    return model


def suggest_cut_off(scores: Sequence[float], answerable: Sequence[bool], max_false_idk: float) -> float:
    """The highest cut-off that refuses at most ``max_false_idk`` of the answerable questions."""
    positives = sorted(score for score, ok in zip(scores, answerable, strict=True) if ok)
    if not positives:
        return 0.5
    allowed = min(int(math.floor(max_false_idk * len(positives))), len(positives) - 1)
    if allowed == 0:  # refuse no answerable question: cut just below the lowest score
        return round(positives[0] - 1e-4, 4)
    # refuse the `allowed` lowest answerable scores: cut halfway to the next one
    return round((positives[allowed - 1] + positives[allowed]) / 2, 4)


def precision_recall_curve(
    scores: Sequence[float], answerable: Sequence[bool], cut_offs: Sequence[float]
) -> list[dict[str, float | None]]:
    """ "I don't know" precision and recall (unanswerable = positive) at each cut-off (refuse if score < cut)."""
    points = []
    for cut in cut_offs:
        refused = [score < cut for score in scores]
        hits = sum(r and not a for r, a in zip(refused, answerable, strict=True))
        points.append(
            {
                "cut_off": round(float(cut), 4),
                "precision": round(hits / sum(refused), 4) if any(refused) else None,
                "recall": round(hits / sum(not a for a in answerable), 4) if not all(answerable) else None,
            }
        )
    return points


def roc_auc(scores: Sequence[float], answerable: Sequence[bool]) -> float | None:
    """Probability that an answerable question scores above an unanswerable one (ties count half)."""
    pos = [s for s, a in zip(scores, answerable, strict=True) if a]
    neg = [s for s, a in zip(scores, answerable, strict=True) if not a]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 4)
