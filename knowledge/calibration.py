"""Fit the models of a freshly built index on the dev questions (never on the gold set): answerability and
the passage ranker.

Used as the ``finalize`` step of :func:`knowledge.index.build_index`: it opens the staging folder as a
:class:`~knowledge.retrieval.KnowledgeBase`, computes the features of every dev question (:func:`examples`),
fits :class:`~knowledge.confidence.AnswerabilityModel` (:func:`fit`), writes ``answerability.json`` next to
the index files, embeds every chunk's passages for the extractive answer (``passages.npz``), fits the
passage ranker (:mod:`knowledge.rerank`) on the candidate passages of the answerable dev questions
(:func:`passage_groups`: right when in the question's labelled section), writes ``passage_ranker.json``, and
returns the manifest entries: the fits' summaries, the hybrid retriever's fusion and the extractive answer's
settings (``passages``: longest passage, chunks it may come from).

The ranker's summary compares, on the same candidates, how often the top passage is a right one:
``dev_cv_top1`` (each question ranked by a ranker fitted on the other folds of questions) against
``baseline_top1`` (the passage with the question's most similar sentence, the choice without a ranker) and
``first_block_top1`` (the first block of the best chunk), and ``candidate_recall``, the share of labelled
questions with a right passage among the candidates at all.

The answerability summary's ``dev_cv_auc`` is measured on rows the model being scored was not fitted on: stratified
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
from knowledge.gold import GoldSetError
from knowledge.index import MANIFEST_FILE
from knowledge.metrics import roc_auc
from knowledge.passages import parse_blocks
from knowledge.rerank import Group, SimilarityRanker, cross_validated_top1, fit_ranker, top1
from knowledge.retrieval import KnowledgeBase
from knowledge.retrievers import Hit
from knowledge.stores import StoreConfig

#: Folds of the cross-validated dev AUC (fewer when a class has fewer dev questions).
CV_FOLDS = 5
#: Answerable dev questions a tenant needs for a cut-off of its own (:func:`tenant_cut_offs`): with fewer, one
#: question's score would set it.
MIN_TENANT_ANSWERABLE = 20


@dataclass
class Example:
    """One training or evaluation row: a question's features and whether it has an answer."""

    id: str
    values: dict[str, float]
    answerable: bool
    source: str = "dev"
    tenant: str = ""


def examples(kb: KnowledgeBase, questions: Sequence[Any], *, leave_out: bool = False) -> list[Example]:
    """Feature rows for ``questions`` (``GoldQuestion``-like); ``leave_out`` adds the hidden-document negatives."""
    rows = []
    for question in questions:
        values = kb.answerability_features(question.question, question.tenant)
        rows.append(Example(question.id, values, question.answerable, tenant=question.tenant))
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
    keeping "I don't know" rare for answerable ones. ``tenant_min_scores`` holds the same promise per tenant
    (:func:`tenant_cut_offs`).
    """
    if len({row.answerable for row in rows}) < 2:
        raise ValueError("fitting the answerability model needs answerable and unanswerable questions")
    x = np.asarray([[row.values[name] for name in feature_names] for row in rows], dtype=float)
    y = np.asarray([row.answerable for row in rows], dtype=int)
    model = AnswerabilityModel.fit(x, y, feature_names, c=c)
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
    model.info["tenant_min_scores"] = tenant_cut_offs(
        dev, scores, max_false_idk, model.info["suggested_min_score"]
    )
    return model


def tenant_cut_offs(
    dev: Sequence[Example], scores: Sequence[float], max_false_idk: float, overall: float
) -> dict[str, float]:
    """A lower cut-off for each tenant whose own answerable dev questions the overall one refuses too often.

    The answerability model is one for all tenants, and its scores are not equally high everywhere: a small
    tenant's articles share more words with each other (low ``dense_margin``) and use fewer words
    (high ``unknown``), so its answerable questions score lower. A tenant with at least
    :data:`MIN_TENANT_ANSWERABLE` answerable dev questions gets the cut-off that refuses at most
    ``max_false_idk`` of them when that is lower than ``overall``; the others keep ``overall`` (a cut-off is
    never raised: a tenant the overall line already serves is left as it is)."""
    by_tenant: dict[str, list[tuple[float, bool]]] = {}
    for row, score in zip(dev, scores, strict=True):
        by_tenant.setdefault(row.tenant, []).append((score, row.answerable))
    lowered = {}
    for tenant, rows in sorted(by_tenant.items()):
        if not tenant or sum(ok for _, ok in rows) < MIN_TENANT_ANSWERABLE:
            continue
        own = suggest_cut_off([s for s, _ in rows], [ok for _, ok in rows], max_false_idk)
        if own < overall:
            lowered[tenant] = own
    return lowered


def describe_cut_offs(overall: float, tenants: dict[str, float] | None) -> str:
    """The served "I don't know" lines in one line of text: the overall one, then the tenants' own lower ones
    (``0.2941 (globex 0.0285)``), as ``build_index`` and ``evaluate_rag`` print them."""
    own = ", ".join(f"{tenant} {float(line):g}" for tenant, line in (tenants or {}).items())
    return f"{float(overall):g}" + (f" ({own})" if own else "")


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


def passage_groups(kb: KnowledgeBase, questions: Sequence[Any]) -> list[Group]:
    """The candidate passages of each answerable question (``GoldQuestion``-like) and which are right: from
    one of its documents, from one of its ``sections`` when it names some, and holding one of its
    ``passages`` (texts of the right paragraph, list or table) when it names some.

    Raises :class:`~knowledge.gold.GoldSetError` for a label no chunk of the question's documents has.
    """
    texts: dict[tuple[str, str], str] = {}
    for chunk in kb.chunks:
        key = (chunk.doc_id, chunk.section)
        texts[key] = (
            texts.get(key, "") + "\n" + "\n".join(block.render() for block in parse_blocks(chunk.text))
        )
    groups = []
    for question in questions:
        if not question.answerable:
            continue
        _check_labels(question, texts)
        found = kb.lookup(question.question, question.tenant, top_k=kb.extractive.chunks)
        if found.query_vector is None or not found.hits:
            continue
        candidates = kb.extractive.candidates(found.query_vector, found.hits, found.question)
        right = [
            c.hit.doc_id in question.doc_ids
            and (not question.sections or c.hit.section in question.sections)
            and (not question.passages or any(_has(c.block.render(), p) for p in question.passages))
            for c in candidates
        ]
        groups.append(Group(question.id, [c.features for c in candidates], right))
    return groups


def _check_labels(question: Any, texts: dict[tuple[str, str], str]) -> None:
    """Every labelled section and passage of ``question`` exists in its documents (else GoldSetError)."""
    sections = {section for doc_id, section in texts if doc_id in question.doc_ids}
    unknown = [name for name in question.sections if name not in sections]
    labelled = [
        text
        for (doc_id, section), text in texts.items()
        if doc_id in question.doc_ids and section in question.sections
    ]
    unknown += [passage for passage in question.passages if not any(_has(text, passage) for text in labelled)]
    if unknown:
        raise GoldSetError(f"dev question {question.id!r} names unknown section or passage {unknown[0]!r}")


def _has(text: str, passage: str) -> bool:
    return " ".join(passage.lower().split()) in " ".join(text.lower().split())


def fit_passage_ranker(groups: Sequence[Group], *, c: float, seed: int) -> Any:
    """The passage ranker fitted on the dev questions' :func:`passage_groups`, its summary in ``info`` (see the
    module docstring); ``ValueError`` when too few questions have a right and a wrong candidate."""
    ranker = fit_ranker(groups, c=c)
    reachable = [group for group in groups if any(group.right)]
    ranker.info |= {
        "labelled_questions": len(groups),
        "candidate_recall": round(len(reachable) / len(groups), 4) if groups else None,
        "baseline_top1": top1(reachable, lambda group: SimilarityRanker().scores(group.rows)),
        "first_block_top1": top1(reachable, lambda group: [-i for i in range(len(group.rows))]),
        "cv_seed": seed,
    }
    ranker.info["dev_cv_top1"], ranker.info["cv_folds"] = cross_validated_top1(reachable, seed=seed, c=c)
    return ranker


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
    passages: dict[str, Any] | None = None,
) -> Callable[[Path], dict[str, Any]]:
    """The ``finalize`` callback for ``build_index``: record the fusion and the extractive answer's settings
    (``passages``: ``max_chars``, ``chunks``; ``ranker_c``, the ranker's inverse L2 strength), fit the
    answerability model and the passage ranker on ``dev_questions`` if any."""
    settings = dict(passages or {})
    ranker_c = float(settings.pop("ranker_c", 1.0))

    def finalize(staging: Path) -> dict[str, Any]:
        extra: dict[str, Any] = {"retrieval": {"fusion": fusion, "dense_weight": dense_weight}}
        if settings:
            extra["passages"] = settings
        manifest_path = staging / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text())
        manifest_path.write_text(json.dumps(manifest | extra, indent=2, sort_keys=True) + "\n")
        kb = KnowledgeBase.load(staging, embed_model, store=store)
        try:
            kb.extractive.precompute([Hit.of(chunk, 0.0) for chunk in kb.chunks])
            kb.extractive.save(staging)
            if not dev_questions:
                return extra | {
                    "answerability": {"kind": "dense_score"},
                    "passage_ranker": {"kind": SimilarityRanker.kind},
                }
            known = {chunk.doc_id for chunk in kb.chunks}
            usable = [q for q in dev_questions if all(doc_id in known for doc_id in q.doc_ids)]
            rows = examples(kb, usable)
            model = fit(rows, c=c, max_false_idk=max_false_idk)
            model.info["dev_cv_auc"], model.info["cv_folds"] = cross_validated_auc(rows, seed=seed, c=c)
            model.info["cv_seed"] = seed
            model.save(staging)
            groups = passage_groups(kb, usable)
            try:
                ranker = fit_passage_ranker(groups, c=ranker_c, seed=seed)
            except ValueError as exc:  # too few labelled questions: the index keeps the similarity choice
                summary = {"kind": SimilarityRanker.kind, "not_fitted": str(exc)}
            else:
                ranker.save(staging)
                summary = {"kind": ranker.kind, "features": ranker.features, **ranker.info}
        finally:
            kb.close()
        return extra | {
            "answerability": {"kind": model.kind, "features": model.features, **model.info},
            "passage_ranker": summary,
        }

    return finalize
