"""Query a built knowledge index: tenant-scoped retrieval and an extractive, source-naming answer.

No LLM is involved. The answer quotes the sentences of the best retrieved chunk(s) that are most
similar to the question (scored with the same embedding model) and names where they come from;
when the best retrieval score is under the cut-off it says it does not know and offers a human.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import MetadataMode, QueryBundle
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters

from knowledge.embeddings import configure_llama_index, embed_model_name, local_embed_model
from knowledge.index import INDEX_ID, read_manifest

#: Questions are cut to this many characters before embedding (MiniLM reads ~256 tokens anyway).
MAX_QUESTION_CHARS = 1000
#: Longest quoted passage, in characters.
MAX_ANSWER_CHARS = 500
#: At most this many sentences are quoted, all from one chunk.
MAX_SENTENCES = 3
#: Besides the best sentence, quote those whose similarity is within this margin of it.
SENTENCE_MARGIN = 0.1
#: How many of the retrieved chunks (above the cut-off) the quoted sentences may come from.
PASSAGE_CHUNKS = 2

IDK_TEXT = (
    "I'm sorry, I don't know the answer to that from our help articles. "
    "Would you like me to connect you with a human agent?"
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk: its document, section, text and similarity to the question."""

    doc_id: str
    title: str
    section: str
    text: str
    score: float
    chunk_id: str = ""

    @property
    def source_label(self) -> str:
        """``Title › Section`` (just the title for a document's introduction)."""
        return f"{self.title} › {self.section}" if self.section else self.title

    def source(self) -> dict[str, str]:
        """The citation form used in :class:`Answer`."""
        return {"doc_id": self.doc_id, "title": self.title, "section": self.section}


@dataclass(frozen=True)
class Answer:
    """A reply for the user: ``answered`` is False when the knowledge base does not know."""

    text: str
    sources: list[dict[str, str]] = field(default_factory=list)
    confidence: float = 0.0
    answered: bool = False


def clean_question(question: str) -> str:
    """Collapse whitespace and cut the question to :data:`MAX_QUESTION_CHARS` characters."""
    return " ".join(str(question or "").split())[:MAX_QUESTION_CHARS]


def split_sentences(text: str) -> list[str]:
    """Split a chunk's Markdown into quotable sentences.

    Lines are split at sentence ends; headings, code fences and table rules are dropped; list
    markers and bold marks are removed; a table row becomes its cells joined by ": ".
    """
    sentences: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", "```", "~~~")) or set(line) <= set("|-: "):
            continue
        if line.startswith("|"):
            line = ": ".join(cell.strip() for cell in line.strip("|").split("|") if cell.strip())
        line = _LIST_MARKER.sub("", line).replace("**", "").replace("__", "")
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return sentences


class KnowledgeBase:
    """A loaded knowledge index plus the embedding model that reads it."""

    def __init__(self, index: VectorStoreIndex, manifest: dict[str, Any], embed_model: BaseEmbedding):
        self._index = index
        self._manifest = manifest
        self._embed_model = embed_model
        self._sentences: dict[str, tuple[list[str], np.ndarray]] = {}

    @classmethod
    def load(cls, index_dir: Path | str, embed_model: BaseEmbedding | None = None) -> KnowledgeBase:
        """Open the index in ``index_dir`` (built by :func:`knowledge.index.build_index`).

        ``embed_model`` defaults to the local MiniLM; it must be the model the index was built with.
        Raises ``FileNotFoundError`` without an index and ``ValueError`` on a model mismatch.
        """
        manifest = read_manifest(index_dir)
        embed_model = embed_model or local_embed_model()
        if manifest.get("embedding_model") != embed_model_name(embed_model):
            raise ValueError(
                f"index {index_dir} was built with {manifest.get('embedding_model')!r}, "
                f"not {embed_model_name(embed_model)!r}; rebuild it or load it with that model"
            )
        configure_llama_index(embed_model)
        storage = StorageContext.from_defaults(persist_dir=str(index_dir))
        index = load_index_from_storage(storage, index_id=INDEX_ID, embed_model=embed_model)
        return cls(index, manifest, embed_model)

    @property
    def version(self) -> str:
        """``kb_version`` of the loaded index: changes whenever content or build configuration does."""
        return str(self._manifest["kb_version"])

    @property
    def manifest(self) -> dict[str, Any]:
        """The index's ``manifest.json``."""
        return self._manifest

    def retrieve(self, question: str, tenant: str, top_k: int = 3) -> list[Hit]:
        """The ``top_k`` chunks of ``tenant``'s documents most similar to ``question``, best first."""
        return self._search(clean_question(question), tenant, top_k)[0]

    def answer(self, question: str, tenant: str, top_k: int = 3, min_score: float = 0.35) -> Answer:
        """Answer from the knowledge base, or say "I don't know" when the best score is under ``min_score``."""
        hits, query_vector = self._search(clean_question(question), tenant, top_k)
        if not hits or query_vector is None or hits[0].score < min_score:
            return Answer(text=IDK_TEXT, confidence=hits[0].score if hits else 0.0, answered=False)
        usable = [hit for hit in hits if hit.score >= min_score]
        passage, quoted = self._extract(query_vector, usable[:PASSAGE_CHUNKS])
        sources = [quoted.source()]
        for hit in usable:
            if hit.source() not in sources:
                sources.append(hit.source())
        return Answer(
            text=f"{passage}\n\nSource: {quoted.source_label}",
            sources=sources,
            confidence=hits[0].score,
            answered=True,
        )

    def _search(self, query: str, tenant: str, top_k: int) -> tuple[list[Hit], np.ndarray | None]:
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        if not query:
            return [], None
        vector = np.asarray(self._embed_model.get_query_embedding(query), dtype=float)
        if not np.linalg.norm(vector) > 0:  # nothing the model can represent (also catches NaN)
            return [], None
        retriever = self._index.as_retriever(
            similarity_top_k=top_k,
            filters=MetadataFilters(filters=[MetadataFilter(key="tenant", value=tenant)]),
        )
        hits = []
        for result in retriever.retrieve(QueryBundle(query_str=query, embedding=vector.tolist())):
            if result.score is None or not math.isfinite(result.score):
                continue
            meta = result.node.metadata
            hits.append(
                Hit(
                    doc_id=str(meta.get("doc_id", result.node.ref_doc_id)),
                    title=str(meta.get("title", "")),
                    section=str(meta.get("section", "")),
                    text=result.node.get_content(metadata_mode=MetadataMode.NONE),
                    score=float(result.score),
                    chunk_id=result.node.node_id,
                )
            )
        return hits, vector

    def _extract(self, query_vector: np.ndarray, hits: Sequence[Hit]) -> tuple[str, Hit]:
        """The quoted passage (best sentences of one chunk, in reading order) and the chunk it is from."""
        best: tuple[float, Hit, list[str], np.ndarray] | None = None
        for hit in hits:
            sentences, vectors = self._chunk_sentences(hit)
            if not sentences:
                continue
            similarities = _cosine(vectors, query_vector)
            if best is None or similarities.max() > best[0]:
                best = (float(similarities.max()), hit, sentences, similarities)
        if best is None:
            return _shorten(" ".join(hits[0].text.split())), hits[0]
        top, hit, sentences, similarities = best
        ranked = [i for i in np.argsort(-similarities) if similarities[i] >= top - SENTENCE_MARGIN]
        chosen = sorted(ranked[:MAX_SENTENCES])
        return _shorten(" ".join(sentences[i] for i in chosen)), hit

    def _chunk_sentences(self, hit: Hit) -> tuple[list[str], np.ndarray]:
        """A chunk's sentences and their embeddings, computed once per chunk and then reused."""
        if hit.chunk_id not in self._sentences:
            sentences = split_sentences(hit.text)
            vectors = (
                np.asarray(self._embed_model.get_text_embedding_batch(sentences), dtype=float)
                if sentences
                else np.zeros((0, 0))
            )
            self._sentences[hit.chunk_id] = (sentences, vectors)
        return self._sentences[hit.chunk_id]


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row with ``vector``; zero where either side is a zero vector."""
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    dots = matrix @ vector
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _shorten(text: str) -> str:
    if len(text) <= MAX_ANSWER_CHARS:
        return text
    return text[:MAX_ANSWER_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " …"
