"""The extractive answer: the best sentences of the best retrieved chunk, quoted with their source (no LLM).

:class:`ExtractiveAnswerer` splits each retrieved chunk into sentences (:func:`split_sentences`), embeds
them once per chunk, and quotes, from the one of the first :data:`PASSAGE_CHUNKS` chunks whose best
sentence is most similar to the question, that sentence and those within :data:`SENTENCE_MARGIN` of it
(at most :data:`MAX_SENTENCES`, in reading order, cut to :data:`MAX_ANSWER_CHARS`), followed by
"Source: Title › Section".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from knowledge.retrievers import Hit

#: Longest quoted passage, in characters.
MAX_ANSWER_CHARS = 500
#: At most this many sentences are quoted, all from one chunk.
MAX_SENTENCES = 3
#: Besides the best sentence, quote those whose similarity is within this margin of it.
SENTENCE_MARGIN = 0.1
#: How many of the retrieved chunks the quoted sentences may come from.
PASSAGE_CHUNKS = 2

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


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


class ExtractiveAnswerer:
    """Quotes retrieved chunks; each chunk's sentences are embedded once and then reused (thread-safe)."""

    def __init__(self, embed_model: BaseEmbedding):
        self._embed_model = embed_model
        self._sentences: dict[str, tuple[list[str], np.ndarray]] = {}
        self._lock = threading.Lock()

    def answer(
        self, query_vector: np.ndarray | None, hits: Sequence[Hit]
    ) -> tuple[str, list[dict[str, str]]]:
        """The reply text (quoted passage, then "Source: ...") and its sources, the quoted chunk first.

        ``hits`` must not be empty; without a query vector the best chunk is quoted from its start.
        """
        if query_vector is not None:
            passage, quoted = self._passage(query_vector, hits[:PASSAGE_CHUNKS])
        else:
            passage, quoted = _shorten(" ".join(hits[0].text.split())), hits[0]
        sources = [quoted.source()]
        for hit in hits:
            if hit.source() not in sources:
                sources.append(hit.source())
        return f"{passage}\n\nSource: {quoted.source_label}", sources

    def _passage(self, query_vector: np.ndarray, hits: Sequence[Hit]) -> tuple[str, Hit]:
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
        with self._lock:
            cached = self._sentences.get(hit.chunk_id)
        if cached is None:
            sentences = split_sentences(hit.text)
            vectors = (
                np.asarray(self._embed_model.get_text_embedding_batch(sentences), dtype=np.float32)
                if sentences
                else np.zeros((0, 0))
            )
            cached = (sentences, vectors)
            with self._lock:
                self._sentences[hit.chunk_id] = cached
        return cached


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row with ``vector``; zero where either side is a zero vector."""
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    dots = matrix @ vector
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _shorten(text: str) -> str:
    if len(text) <= MAX_ANSWER_CHARS:
        return text
    return text[:MAX_ANSWER_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " …"
