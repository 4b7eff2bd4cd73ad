"""Query a built knowledge index: tenant-scoped retrieval, answerability, and answers that name their source.

:class:`KnowledgeBase` is what the bot and the evaluation use::

    kb = KnowledgeBase.load("knowledge/index")
    kb.retrieve("How long does delivery take?", "acme", top_k=5, retriever="hybrid")  # -> [Hit, ...]
    kb.confidence("How long does delivery take?", "acme")                            # -> 0..1
    kb.answer("How long does delivery take?", "acme", top_k=3, min_score=0.5)        # -> Answer

``answer`` retrieves with both retrievers, scores answerability (:mod:`knowledge.confidence`) and, below
``min_score``, says it does not know and offers a human. Otherwise it answers with the extractive
answerer (the best sentences of the best chunk, with "Source: title › section"; no LLM) or, when an LLM
answerer is configured (:mod:`knowledge.llm`), with a validated LLM answer that cites its sources, falling
back to the extractive answer (and saying so in :attr:`Answer.fallback_reason`) whenever that fails.
Questions without a single Latin letter get a clear refusal (the articles and model are English).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from knowledge.confidence import AnswerabilityModel, DenseScoreModel, features, load_model
from knowledge.embeddings import configure_llama_index, embed_model_name, local_embed_model
from knowledge.index import Chunk, read_chunks, read_manifest
from knowledge.retrievers import BM25Retriever, DenseRetriever, HybridSearch, Retrieval, Scored
from knowledge.stores import StoreConfig, VectorStoreAdapter, open_adapter

#: Questions are cut to this many characters before retrieval (MiniLM reads ~256 word pieces anyway).
MAX_QUESTION_CHARS = 1000
#: Longest quoted passage, in characters.
MAX_ANSWER_CHARS = 500
#: At most this many sentences are quoted, all from one chunk.
MAX_SENTENCES = 3
#: Besides the best sentence, quote those whose similarity is within this margin of it.
SENTENCE_MARGIN = 0.1
#: How many of the retrieved chunks the quoted sentences may come from.
PASSAGE_CHUNKS = 2

IDK_TEXT = (
    "I'm sorry, I don't know the answer to that from our help articles. "
    "Would you like me to connect you with a human agent?"
)
LANGUAGE_TEXT = (
    "I'm sorry, I can only answer questions written in English for now. "
    "Would you like me to connect you with a human agent?"
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_LATIN = re.compile(r"[A-Za-z]")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk: its document, section, text and score (from the retriever that ranked it)."""

    doc_id: str
    title: str
    section: str
    text: str
    score: float
    chunk_id: str = ""
    tenant: str = ""

    @property
    def source_label(self) -> str:
        """``Title › Section`` (just the title for a document's introduction)."""
        return f"{self.title} › {self.section}" if self.section else self.title

    def source(self) -> dict[str, str]:
        """The citation form used in :class:`Answer`."""
        return {"doc_id": self.doc_id, "title": self.title, "section": self.section}


@dataclass(frozen=True)
class Answer:
    """A reply for the user: ``answered`` is False when the knowledge base does not know (or refuses).

    ``confidence`` is the answerability score compared with the cut-off; ``mode`` says who wrote the text
    (``extractive``, ``llm``, ``idk`` or ``refused``) and ``fallback_reason`` why an LLM answer was not
    used when one was asked for.
    """

    text: str
    sources: list[dict[str, str]] = field(default_factory=list)
    confidence: float = 0.0
    answered: bool = False
    mode: str = "idk"
    fallback_reason: str | None = None
    features: dict[str, float] = field(default_factory=dict)


def clean_question(question: str) -> str:
    """Collapse whitespace and cut the question to :data:`MAX_QUESTION_CHARS` characters."""
    return " ".join(str(question or "").split())[:MAX_QUESTION_CHARS]


def unsupported_script(question: str) -> bool:
    """True for a question with letters but not one Latin letter (Chinese, Cyrillic, Arabic...)."""
    return bool(_LETTER.search(question)) and not _LATIN.search(question)


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
    """A loaded knowledge index: chunks, vector store, BM25, answerability model and answerers."""

    def __init__(
        self,
        chunks: Sequence[Chunk],
        adapter: VectorStoreAdapter,
        manifest: dict[str, Any],
        embed_model: BaseEmbedding,
        *,
        answerability: AnswerabilityModel | DenseScoreModel | None = None,
        fusion: str = "rrf",
        dense_weight: float = 0.5,
        llm: Any = None,
    ):
        self._manifest = manifest
        self._embed_model = embed_model
        self._adapter = adapter
        self._dense = DenseRetriever(adapter.store, chunks, embed_model)
        self._bm25 = BM25Retriever(chunks)
        self._search = HybridSearch(self._dense, self._bm25, fusion=fusion, dense_weight=dense_weight)
        self.answerability = answerability or DenseScoreModel()
        self.llm = llm
        self._sentences: dict[str, tuple[list[str], np.ndarray]] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        index_dir: Path | str,
        embed_model: BaseEmbedding | None = None,
        *,
        store: StoreConfig | None = None,
        fusion: str | None = None,
        dense_weight: float | None = None,
        llm: Any = "env",
    ) -> KnowledgeBase:
        """Open the index in ``index_dir`` (built by :func:`knowledge.index.build_index`).

        ``embed_model`` defaults to the local MiniLM; it must be the model the index was built with.
        An index whose vectors live in pgvector needs ``store`` (default: from the environment, see
        :mod:`knowledge.stores`). ``fusion``/``dense_weight`` default to what the build recorded.
        ``llm="env"`` turns on the LLM answerer when ``SWITCHBOARD_LLM_BASE_URL`` is set (see
        :mod:`knowledge.llm`); pass an ``LLMAnswerer`` or None to choose. Raises ``FileNotFoundError``
        without an index and ``ValueError`` on a model or store mismatch.
        """
        manifest = read_manifest(index_dir)
        if manifest.get("format") != 2:
            raise ValueError(f"index {index_dir} has an old format; rebuild it (dvc repro build_index)")
        embed_model = embed_model or local_embed_model(_backend_for(manifest))
        if manifest.get("embedding_model") != embed_model_name(embed_model):
            raise ValueError(
                f"index {index_dir} was built with {manifest.get('embedding_model')!r}, "
                f"not {embed_model_name(embed_model)!r}; rebuild it or load it with that model"
            )
        configure_llama_index(embed_model)
        recorded = manifest.get("vector_store") or {"kind": "embedded"}
        if recorded["kind"] == "pgvector":
            config = store or StoreConfig.resolve(environ=None)
            if config.kind != "pgvector":
                raise ValueError(
                    f"index {index_dir} keeps its vectors in pgvector table {recorded.get('table')!r}: "
                    "set SWITCHBOARD_VECTOR_STORE=pgvector and SWITCHBOARD_PGVECTOR_URL"
                )
            config = StoreConfig(kind="pgvector", url=config.url, table=recorded.get("table") or config.table)
            adapter = open_adapter(config, embed_dim=int(manifest.get("embedding_dim", 384)))
        else:
            adapter = open_adapter(StoreConfig(), index_dir=Path(index_dir))
        retrieval = manifest.get("retrieval") or {}
        if llm == "env":
            from knowledge.llm import answerer_from_env

            llm = answerer_from_env()
        return cls(
            read_chunks(index_dir),
            adapter,
            manifest,
            embed_model,
            answerability=load_model(index_dir),
            fusion=fusion or retrieval.get("fusion", "rrf"),
            dense_weight=float(
                dense_weight if dense_weight is not None else retrieval.get("dense_weight", 0.5)
            ),
            llm=llm,
        )

    # --- facts -----------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """``kb_version`` of the loaded index: changes whenever content or build configuration does."""
        return str(self._manifest["kb_version"])

    @property
    def manifest(self) -> dict[str, Any]:
        """The index's ``manifest.json``."""
        return self._manifest

    @property
    def chunks(self) -> list[Chunk]:
        """Every chunk of the index (all tenants)."""
        return self._dense.chunks

    @property
    def embed_model(self) -> BaseEmbedding:
        return self._embed_model

    @property
    def fusion(self) -> tuple[str, float]:
        """The hybrid retriever's fusion method and dense weight."""
        return self._search.fusion, self._search.dense_weight

    def set_fusion(self, fusion: str, dense_weight: float) -> None:
        """Change the hybrid retriever's fusion (evaluation and benchmarks)."""
        self._search = HybridSearch(self._dense, self._bm25, fusion=fusion, dense_weight=dense_weight)

    # --- retrieval -------------------------------------------------------------------------------

    def retrieve(self, question: str, tenant: str, top_k: int = 3, retriever: str = "dense") -> list[Hit]:
        """The ``top_k`` chunks of ``tenant``'s documents for ``question``, best first.

        ``dense`` by default, so that :attr:`Hit.score` is a cosine similarity callers can compare with
        thresholds (a fused hybrid score is only a rank signal); :meth:`answer` uses ``hybrid``.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        query = clean_question(question)
        if not query:
            return []
        return self._hits(self._search.run(query, tenant, top_k, retriever).ranked)

    def answerability_features(
        self, question: str, tenant: str, exclude_docs: Sequence[str] = ()
    ) -> dict[str, float]:
        """The answerability features of ``question`` (``exclude_docs``: as if those documents were absent)."""
        retrieval = self._search.run(clean_question(question) or " ", tenant, 10, "hybrid", both=True)
        if exclude_docs:
            hidden = set(exclude_docs)
            retrieval = Retrieval(
                ranked=[item for item in retrieval.ranked if self.chunks[item.position].doc_id not in hidden],
                dense=[item for item in retrieval.dense if self.chunks[item.position].doc_id not in hidden],
                bm25=[item for item in retrieval.bm25 if self.chunks[item.position].doc_id not in hidden],
                query_vector=retrieval.query_vector,
                query_terms=retrieval.query_terms,
            )
        return features(retrieval, self.chunks, self._bm25, tenant)

    def confidence(self, question: str, tenant: str) -> float:
        """The answerability score of ``question`` (what :meth:`answer` compares with ``min_score``)."""
        return self.answerability.predict(self.answerability_features(question, tenant))

    # --- answers ---------------------------------------------------------------------------------

    def answer(
        self,
        question: str,
        tenant: str,
        top_k: int = 3,
        min_score: float = 0.5,
        *,
        retriever: str = "hybrid",
        answerer: str = "auto",
    ) -> Answer:
        """Answer from the knowledge base, or say "I don't know" when the confidence is under ``min_score``.

        ``answerer``: ``extractive``, ``llm`` (needs a configured LLM answerer) or ``auto`` (the LLM
        answerer when configured, else extractive). Never raises for odd input.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        query = clean_question(question)
        if not query:
            return Answer(text=IDK_TEXT, mode="idk")
        if unsupported_script(query):
            return Answer(text=LANGUAGE_TEXT, mode="refused", fallback_reason="unsupported_script")
        retrieval = self._search.run(query, tenant, top_k, retriever, both=True)
        values = features(retrieval, self.chunks, self._bm25, tenant)
        confidence = self.answerability.predict(values)
        hits = self._hits(retrieval.ranked)
        if not hits or confidence < min_score:
            return Answer(text=IDK_TEXT, confidence=confidence, mode="idk", features=values)
        vector = retrieval.query_vector
        passage, quoted = (
            self._extract(vector, hits[:PASSAGE_CHUNKS])
            if vector is not None
            else (
                _shorten(" ".join(hits[0].text.split())),
                hits[0],
            )
        )
        sources = [quoted.source()]
        for hit in hits:
            if hit.source() not in sources:
                sources.append(hit.source())
        extractive = Answer(
            text=f"{passage}\n\nSource: {quoted.source_label}",
            sources=sources,
            confidence=confidence,
            answered=True,
            mode="extractive",
            features=values,
        )
        use_llm = answerer == "llm" or (answerer == "auto" and self.llm is not None)
        if not use_llm:
            return extractive
        if self.llm is None:
            return _replace(extractive, fallback_reason="no LLM answerer is configured")
        return self.llm.answer(query, hits, extractive)

    def _hits(self, ranked: Sequence[Scored]) -> list[Hit]:
        hits = []
        for item in ranked:
            chunk = self.chunks[item.position]
            hits.append(
                Hit(
                    doc_id=chunk.doc_id,
                    title=chunk.title,
                    section=chunk.section,
                    text=chunk.text,
                    score=item.score,
                    chunk_id=chunk.id,
                    tenant=chunk.tenant,
                )
            )
        return hits

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

    def clear_caches(self) -> None:
        """Forget cached question embeddings (latency benchmarks measure the embedding too)."""
        self._dense.embed.cache_clear()

    def close(self) -> None:
        """Release the vector store's connections."""
        self._adapter.close()


def _backend_for(manifest: dict[str, Any]) -> str | None:
    """The embedding back-end an index needs: int8 indexes need int8; others take the configured one."""
    return "onnx-int8" if str(manifest.get("embedding_model", "")).endswith(" int8") else None


def _replace(answer: Answer, **changes: Any) -> Answer:
    from dataclasses import replace

    return replace(answer, **changes)


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row with ``vector``; zero where either side is a zero vector."""
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    dots = matrix @ vector
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _shorten(text: str) -> str:
    if len(text) <= MAX_ANSWER_CHARS:
        return text
    return text[:MAX_ANSWER_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " …"
