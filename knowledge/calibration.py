"""Fit the answerability model of a freshly built index on the dev questions (never on the gold set).

Used as the ``finalize`` step of :func:`knowledge.index.build_index`: it opens the staging folder as a
:class:`~knowledge.retrieval.KnowledgeBase`, computes the features of every dev question (:func:`examples`),
fits :class:`~knowledge.confidence.AnswerabilityModel` (:func:`fit`), writes ``answerability.json`` next to
the index files and returns the manifest entries: the fit's summary and the hybrid retriever's fusion.

The summary's ``dev_cv_auc`` is measured on rows the model being scored was not fitted on: stratified
k-fold over the dev questions (``cv_folds``, shuffled with the build's seed), each fold scored by a model
fitted on the other folds, the AUC taken over all out-of-fold scores. Optional "leave-document-out"
negatives (each answerable dev question asked again with its supporting documents hidden has, by
construction, no answer) made the model worse on held-out questions, so they are off by default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from knowledge.confidence import MODEL_FEATURES, AnswerabilityModel
from knowledge.index import MANIFEST_FILE
from knowledge.metrics import roc_auc
from knowledge.retrieval import KnowledgeBase
from knowledge.stores import StoreConfig

#: Folds of the cross-validated dev AUC (fewer when a class has fewer dev questions).
CV_FOLDS = 5


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


def cross_validated_auc(
    rows: Sequence[Example], *, seed: int, folds: int = CV_FOLDS, c: float = 1.0
) -> tuple[float | None, int]:
    """AUC of out-of-fold scores on the dev rows, and the folds used (``(None, 0)`` when too few rows).

    Stratified k-fold (shuffled with ``seed``) over the dev rows; every row is scored by a model
    :func:`fit` on the other folds (plus, when present, the leave-out negatives of those folds' questions).
    """
    from sklearn.model_selection import StratifiedKFold

    dev = [row for row in rows if row.source == "dev"]
    labels = np.asarray([row.answerable for row in dev], dtype=int)
    folds = min(folds, int(labels.sum()), int(len(labels) - labels.sum()))
    if folds < 2:
        return None, 0
    scores = np.zeros(len(dev))
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for _, test in split.split(np.zeros(len(dev)), labels):
        held_out = {dev[i].id for i in test}
        training = [row for row in rows if row.id.removesuffix("/hidden") not in held_out]
        model = fit(training, c=c)
        scores[test] = [model.predict(dev[i].values) for i in test]
    return roc_auc(scores.tolist(), labels.astype(bool).tolist()), folds


def finalizer(
    dev_questions: Sequence[Any] | None,
    embed_model: BaseEmbedding,
    *,
    fusion: str = "rrf",
    dense_weight: float = 0.5,
    c: float = 1.0,
    max_false_idk: float = 0.05,
    seed: int = 0,
    store: StoreConfig | None = None,
) -> Callable[[Path], dict[str, Any]]:
    """The ``finalize`` callback for ``build_index``: record the fusion, fit on ``dev_questions`` if any."""

    def finalize(staging: Path) -> dict[str, Any]:
        extra: dict[str, Any] = {"retrieval": {"fusion": fusion, "dense_weight": dense_weight}}
        if not dev_questions:
            return extra | {"answerability": {"kind": "dense_score"}}
        manifest_path = staging / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text())
        manifest_path.write_text(json.dumps(manifest | extra, indent=2, sort_keys=True) + "\n")
        kb = KnowledgeBase.load(staging, embed_model, store=store)
        try:
            known = {chunk.doc_id for chunk in kb.chunks}
            usable = [q for q in dev_questions if all(doc_id in known for doc_id in q.doc_ids)]
            rows = examples(kb, usable)
            model = fit(rows, c=c, max_false_idk=max_false_idk)
            model.info["dev_cv_auc"], model.info["cv_folds"] = cross_validated_auc(rows, seed=seed, c=c)
            model.info["cv_seed"] = seed
            model.save(staging)
        finally:
            kb.close()
        return extra | {"answerability": {"kind": model.kind, "features": model.features, **model.info}}

    return finalize
