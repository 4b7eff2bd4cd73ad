"""Our knowledge base and gold questions as a BEIR-format set (the ``export_beir`` stage writes it).

The articles are the corpus (with their tenant in ``metadata.tenant``), the answerable gold questions the
queries, and each question's supporting documents its relevance judgements (score 1).
"""

from __future__ import annotations

from pathlib import Path

from knowledge.beir_format import write_dataset
from knowledge.documents import load_documents
from knowledge.gold import check_gold_against_index, load_gold


def export_gold(gold: Path, sources: Path, out_dir: Path, default_tenant: str = "acme") -> dict[str, int]:
    """Export the knowledge base (articles as documents) and the answerable gold questions as a BEIR set."""
    documents = load_documents(Path(sources), default_tenant=default_tenant).documents
    questions = load_gold(Path(gold), default_tenant=default_tenant)
    check_gold_against_index(
        questions, {"documents": [{"doc_id": d.id_, "tenant": d.metadata["tenant"]} for d in documents]}
    )
    corpus = {
        doc.id_: {"title": doc.metadata["title"], "text": doc.text, "tenant": doc.metadata["tenant"]}
        for doc in sorted(documents, key=lambda d: d.id_)
    }
    answerable = [q for q in questions if q.answerable]
    queries = {q.id: {"text": q.question, "tenant": q.tenant} for q in answerable}
    qrels = {q.id: dict.fromkeys(q.doc_ids, 1) for q in answerable}
    write_dataset(out_dir, corpus, queries, qrels)
    return {"documents": len(corpus), "queries": len(queries), "judgements": sum(map(len, qrels.values()))}
