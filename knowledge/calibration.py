"""Fit the answerability model of a freshly built index on the dev questions (never on the gold set).

Used as the ``finalize`` step of :func:`knowledge.index.build_index`: it opens the staging folder as a
:class:`~knowledge.retrieval.KnowledgeBase`, computes the features of every dev question, fits
:class:`~knowledge.confidence.AnswerabilityModel`, writes ``answerability.json`` next to the index
files and returns the manifest entries (the fit's summary and the hybrid retriever's fusion).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding

from knowledge.confidence import examples, fit, roc_auc
from knowledge.stores import StoreConfig


def finalizer(
    dev_questions: Sequence[Any] | None,
    embed_model: BaseEmbedding,
    *,
    fusion: str = "rrf",
    dense_weight: float = 0.5,
    c: float = 1.0,
    max_false_idk: float = 0.05,
    store: StoreConfig | None = None,
) -> Callable[[Path], dict[str, Any]]:
    """The ``finalize`` callback for ``build_index``: record the fusion, fit on ``dev_questions`` if any."""

    def finalize(staging: Path) -> dict[str, Any]:
        extra: dict[str, Any] = {"retrieval": {"fusion": fusion, "dense_weight": dense_weight}}
        if not dev_questions:
            return extra | {"answerability": {"kind": "dense_score"}}
        import json

        from knowledge.index import MANIFEST_FILE
        from knowledge.retrieval import KnowledgeBase

        manifest_path = staging / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text())
        manifest_path.write_text(json.dumps(manifest | extra, indent=2, sort_keys=True) + "\n")
        kb = KnowledgeBase.load(staging, embed_model, store=store, llm=None)
        try:
            known = {chunk.doc_id for chunk in kb.chunks}
            usable = [q for q in dev_questions if all(doc_id in known for doc_id in q.doc_ids)]
            rows = examples(kb, usable)
            model = fit(rows, c=c, max_false_idk=max_false_idk)
            model.info["dev_auc"] = roc_auc(
                [model.predict(r.values) for r in rows], [r.answerable for r in rows]
            )
            model.save(staging)
        finally:
            kb.close()
        return extra | {"answerability": {"kind": model.kind, "features": model.features, **model.info}}

    return finalize
