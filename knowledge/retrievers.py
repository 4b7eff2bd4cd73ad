"""Dense, BM25 and hybrid retrievers over a built index, every one filtered by tenant.

- :class:`DenseRetriever` embeds the question and queries the vector store (embedded or pgvector) with a
  tenant ``MetadataFilters``.
- :class:`BM25Retriever` keeps one llama-index ``BM25Retriever`` (bm25s, English stemming, stop words)
  *per tenant*, so term statistics and results never mix tenants.
- :class:`HybridSearch` fuses both lists: reciprocal-rank fusion (``rrf``: ``sum 2w / (60 + rank)``)
  or relative-score fusion (``relative``: ``w * cosine + (1 - w) * bm25 / best bm25 of the query``),
  chosen by the ``fusion`` setting. Both are independent of how deep the candidate lists are.

Each returns :class:`Scored` chunk positions, best first; :class:`Retrieval` keeps both underlying lists
so that the answerability model (:mod:`knowledge.confidence`) can compare them. :class:`Hit` is a ranked
chunk as callers see it (document, section, text, score).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import MetadataMode, TextNode
from llama_index.core.vector_stores.types import BasePydanticVectorStore, VectorStoreQuery

from knowledge.index import Chunk
from knowledge.injection import strip_instructions
from knowledge.stores import tenant_filter

RETRIEVERS = ("dense", "bm25", "hybrid")
FUSIONS = ("rrf", "relative")
#: The ``k`` of reciprocal-rank fusion (Cormack et al. 2009).
RRF_K = 60
#: Each retriever contributes at least this many candidates to the fusion.
MIN_CANDIDATES = 30


@dataclass(frozen=True)
class Scored:
    """A chunk (by position in the index's chunk list) and its score from one retriever."""

    position: int
    score: float


@dataclass
class Retrieval:
    """One question's retrieval: the ranked list asked for, and the dense and BM25 lists behind it."""

    ranked: list[Scored]
    dense: list[Scored] = field(default_factory=list)
    bm25: list[Scored] = field(default_factory=list)
    query_vector: np.ndarray | None = None
    query_terms: list[str] = field(default_factory=list)


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

    @classmethod
    def of(cls, chunk: Chunk, score: float) -> Hit:
        """The hit for ``chunk`` ranked with ``score``; its text without instructions addressed to the
        assistant (:mod:`knowledge.injection`), so no tier shows or follows them."""
        text = strip_instructions(chunk.text)
        return cls(chunk.doc_id, chunk.title, chunk.section, text, score, chunk.id, chunk.tenant)

    @property
    def source_label(self) -> str:
        """``Title › Section`` (just the title for a document's introduction)."""
        return f"{self.title} › {self.section}" if self.section else self.title

    def source(self) -> dict[str, str]:
        """The citation form of an answer's sources."""
        return {"doc_id": self.doc_id, "title": self.title, "section": self.section}


def ranked_doc_ids(hits: Iterable[Hit]) -> list[str]:
    """Distinct document ids of ranked chunks, each at the position of its best chunk."""
    return list(dict.fromkeys(hit.doc_id for hit in hits))


def tokenize(texts: Sequence[str], stemmer: object, stopwords: str | Sequence[str] = "en") -> list[list[str]]:
    """Lower-cased, stop-word-free, stemmed word tokens, one list per text. BM25's analysis by default (bm25s'
    short English list, which keeps words such as "what", "can" and "do"); ``stopwords`` another list."""
    import bm25s

    return bm25s.tokenize(
        list(texts), stopwords=stopwords, stemmer=stemmer, return_ids=False, show_progress=False
    )


def english_stemmer() -> object:
    import Stemmer

    return Stemmer.Stemmer("english")


class DenseRetriever:
    """Nearest chunks by cosine similarity of MiniLM embeddings, within one tenant."""

    def __init__(self, store: BasePydanticVectorStore, chunks: Sequence[Chunk], embed_model: BaseEmbedding):
        self.store = store
        self.embed_model = embed_model
        self._chunks = list(chunks)
        self._position = {chunk.id: i for i, chunk in enumerate(chunks)}
        self.embed = lru_cache(maxsize=1024)(self._embed)

    def _embed(self, query: str) -> np.ndarray | None:
        """The query vector, or None when the model cannot represent the text (zero or NaN vector).

        Cached per question text (``embed``): retrying or re-asking the same question costs nothing.
        """
        vector = np.asarray(self.embed_model.get_query_embedding(query), dtype=np.float32)
        vector.setflags(write=False)
        return vector if np.linalg.norm(vector) > 0 else None

    def search(self, vector: np.ndarray | None, tenant: str, top_k: int) -> list[Scored]:
        """The ``top_k`` chunks of ``tenant`` nearest to ``vector``."""
        if vector is None:
            return []
        result = self.store.query(
            VectorStoreQuery(
                query_embedding=vector.tolist(), similarity_top_k=top_k, filters=tenant_filter(tenant)
            )
        )
        scored = []
        nodes = list(result.nodes or [])
        for i, (node_id, score) in enumerate(zip(result.ids or [], result.similarities or [], strict=False)):
            position = self._position.get(node_id)
            if position is None and i < len(nodes):  # the store has a chunk this process has not loaded
                position = self._adopt(nodes[i])
            usable = position is not None and score is not None and math.isfinite(score)
            if usable and self._chunks[position].tenant == tenant:  # belt and braces: never cross tenants
                scored.append(Scored(position, float(score)))
        return scored

    def _adopt(self, node: object) -> int | None:
        if not isinstance(node, TextNode):
            return None
        self._chunks.append(
            Chunk(
                id=node.node_id,
                doc_id=str(node.metadata.get("doc_id") or node.ref_doc_id),
                tenant=str(node.metadata.get("tenant", "")),
                title=str(node.metadata.get("title", "")),
                section=str(node.metadata.get("section", "")),
                text=node.get_content(metadata_mode=MetadataMode.NONE),
                metadata=dict(node.metadata),
            )
        )
        self._position[node.node_id] = len(self._chunks) - 1
        return len(self._chunks) - 1

    @property
    def chunks(self) -> list[Chunk]:
        return self._chunks


class BM25Retriever:
    """BM25 over each tenant's chunks (title, tags and section included), one index per tenant.

    Built with llama-index's ``BM25Retriever`` (bm25s + PyStemmer). It also keeps each tenant's
    document frequencies, which the answerability features use (how much of the question the
    knowledge base knows at all).
    """

    def __init__(self, chunks: Sequence[Chunk]):
        from llama_index.retrievers.bm25 import BM25Retriever as LlamaBM25

        self.stemmer = english_stemmer()
        self._tenants: dict[str, tuple[object, list[int]]] = {}
        self._df: dict[str, Counter[str]] = {}
        self._chunk_terms: list[frozenset[str]] = [frozenset()] * len(chunks)
        by_tenant: dict[str, list[int]] = {}
        for position, chunk in enumerate(chunks):
            by_tenant.setdefault(chunk.tenant, []).append(position)
        for tenant, positions in by_tenant.items():
            nodes = [_node(chunks[i]) for i in positions]
            retriever = LlamaBM25.from_defaults(
                nodes=nodes, stemmer=self.stemmer, language="en", similarity_top_k=1
            )
            self._tenants[tenant] = (retriever.bm25, positions)
            terms = tokenize(
                [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes], self.stemmer
            )
            df: Counter[str] = Counter()
            for position, chunk_terms in zip(positions, terms, strict=True):
                self._chunk_terms[position] = frozenset(chunk_terms)
                df.update(set(chunk_terms))
            self._df[tenant] = df

    def terms(self, query: str) -> list[str]:
        """The query's analysed terms (distinct, in order)."""
        return list(dict.fromkeys(tokenize([query], self.stemmer)[0]))

    def search(self, terms: Sequence[str], tenant: str, top_k: int) -> list[Scored]:
        """The ``top_k`` chunks of ``tenant`` with a positive BM25 score for ``terms``."""
        if tenant not in self._tenants or not terms:
            return []
        bm25, positions = self._tenants[tenant]
        scores = np.asarray(bm25.get_scores(list(terms)), dtype=np.float64)  # type: ignore[attr-defined]
        k = min(top_k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Scored(positions[i], float(scores[i])) for i in top if scores[i] > 0]

    def idf(self, term: str, tenant: str) -> float:
        """BM25's idf of ``term`` in ``tenant``'s chunks (largest for a term they never use)."""
        df = self._df.get(tenant, Counter())
        n = len(self._tenants.get(tenant, (None, []))[1])
        return math.log(1 + (n - df.get(term, 0) + 0.5) / (df.get(term, 0) + 0.5))

    def known(self, term: str, tenant: str) -> bool:
        """Whether any chunk of ``tenant`` contains ``term``."""
        return self._df.get(tenant, Counter()).get(term, 0) > 0

    def chunk_terms(self, position: int) -> frozenset[str]:
        """The analysed terms of one chunk."""
        return self._chunk_terms[position]


def _node(chunk: Chunk) -> TextNode:
    from knowledge.documents import EMBED_EXCLUDED_KEYS

    return TextNode(
        id_=chunk.id,
        text=chunk.text,
        metadata={key: value for key, value in chunk.metadata.items() if key in ("title", "section", "tags")},
        excluded_embed_metadata_keys=list(EMBED_EXCLUDED_KEYS),
    )


def fuse(
    dense: Sequence[Scored], bm25: Sequence[Scored], *, fusion: str = "rrf", dense_weight: float = 0.5
) -> list[Scored]:
    """Merge two ranked lists into one (see the module docstring for the two methods)."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r} (expected one of {', '.join(FUSIONS)})")
    combined: dict[int, float] = {}
    for weight, ranked in ((dense_weight, dense), (1 - dense_weight, bm25)):
        if fusion == "rrf":  # 2 * weight: equal weights give the textbook sum of 1 / (k + rank)
            contributions = [2 * weight / (RRF_K + rank) for rank in range(1, len(ranked) + 1)]
        else:
            contributions = [
                weight * value for value in _relative([item.score for item in ranked], dense=ranked is dense)
            ]
        for item, contribution in zip(ranked, contributions, strict=True):
            combined[item.position] = combined.get(item.position, 0.0) + contribution
    return [
        Scored(position, score)
        for position, score in sorted(combined.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _relative(scores: Sequence[float], dense: bool) -> list[float]:
    """Scores on a 0..1 scale that does not depend on how deep the list is.

    Cosine similarities are used as they are (clipped at 0); BM25 scores, unbounded and query-dependent,
    are divided by the best score of the query.
    """
    if dense:
        return [max(0.0, score) for score in scores]
    best = max(scores, default=0.0)
    return [score / best if best > 0 else 0.0 for score in scores]


class HybridSearch:
    """Runs the dense and BM25 retrievers once and returns the list the caller asked for."""

    def __init__(
        self, dense: DenseRetriever, bm25: BM25Retriever, *, fusion: str = "rrf", dense_weight: float = 0.5
    ):
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r} (expected one of {', '.join(FUSIONS)})")
        self.dense = dense
        self.bm25 = bm25
        self.fusion = fusion
        self.dense_weight = dense_weight

    def run(
        self, query: str, tenant: str, top_k: int, retriever: str = "hybrid", *, both: bool = False
    ) -> Retrieval:
        """Retrieve ``top_k`` chunks with ``retriever``; ``both`` also fills the other list (for confidence)."""
        if retriever not in RETRIEVERS:
            raise ValueError(f"unknown retriever {retriever!r} (expected one of {', '.join(RETRIEVERS)})")
        depth = max(top_k * 2, MIN_CANDIDATES)
        vector = terms = None
        dense: list[Scored] = []
        lexical: list[Scored] = []
        if retriever in ("dense", "hybrid") or both:
            vector = self.dense.embed(query)
            dense = self.dense.search(vector, tenant, depth if retriever == "hybrid" or both else top_k)
        if retriever in ("bm25", "hybrid") or both:
            terms = self.bm25.terms(query)
            lexical = self.bm25.search(terms, tenant, depth if retriever == "hybrid" or both else top_k)
        if retriever == "dense":
            ranked = dense[:top_k]
        elif retriever == "bm25":
            ranked = lexical[:top_k]
        else:
            ranked = fuse(dense, lexical, fusion=self.fusion, dense_weight=self.dense_weight)[:top_k]
        return Retrieval(
            ranked=ranked, dense=dense, bm25=lexical, query_vector=vector, query_terms=terms or []
        )
