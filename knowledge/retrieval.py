"""Query a built knowledge index: tenant-scoped retrieval, answerability, and answers that name their source.

:class:`KnowledgeBase` is what the bot and the evaluation use::

    kb = KnowledgeBase.load("knowledge/index")
    found = kb.lookup("How long does delivery take?", "acme", top_k=3)  # -> Lookup: one retrieval
    found.confidence, found.hits, kb.cut_off_for("acme")              # answerability, chunks, "I don't know" line
    kb.extract(found)                                                 # -> Answer (extractive, or "I don't know")
    kb.answer("How long does delivery take?", "acme", top_k=3)        # the same two steps

One :meth:`~KnowledgeBase.lookup` per question feeds everything the bot decides and answers with: the
router's features (answerability, the dense scores), the extractive tier 0 and the passages the LLM tiers
see. Below :meth:`~KnowledgeBase.cut_off_for` the tenant (chosen by ``build_index`` on the dev questions and stored
with the index, as the NLU threshold travels with the model) the bot says it does not know and offers a human. The
extractive answer (:mod:`knowledge.extractive`) quotes the passage of the best chunks that answers best (the
index's passage ranker, :mod:`knowledge.rerank`: a whole list or table, or a paragraph's best sentences) with
"Source: title › section"; generated answers are the LLM tiers' of :mod:`app.llm`. Questions without a single Latin letter
get a clear refusal (the articles and model are English).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from app.order_ids import ORDER_ID_IN_TEXT
from knowledge.confidence import AnswerabilityModel, DenseScoreModel, features, load_model
from knowledge.embeddings import configure_llama_index, embed_model_name, local_embed_model
from knowledge.extractive import MAX_ANSWER_CHARS, PASSAGE_CHUNKS, ExtractiveAnswerer
from knowledge.index import READABLE_FORMATS, Chunk, read_chunks, read_manifest
from knowledge.rerank import Ranker, load_ranker
from knowledge.retrievers import BM25Retriever, DenseRetriever, Hit, HybridSearch, Retrieval, Scored
from knowledge.stores import StoreConfig, VectorStoreAdapter, open_adapter

#: Questions are cut to this many characters before retrieval (MiniLM reads ~256 word pieces anyway).
MAX_QUESTION_CHARS = 1000
#: A follow-up's passage is chosen by its own words' vector plus this weight times its lookup's (the topic and the
#: follow-up read together): :meth:`Lookup.focused_on`. Chosen on the 48 dev follow-ups (knowledge/eval/followups.yml)
#: by ``python benchmarks/followups.py``: the right section for 0.396 of them at 0, 0.375 at 0.25, 0.333 at 1 (the
#: weight before), 0.250 at 2. The topic finds the articles; the passage is the one the follow-up's words ask for.
FOLLOWUP_TOPIC_WEIGHT = 0.0

IDK_TEXT = (
    "I'm sorry, I don't know the answer to that from our help articles. "
    "Would you like me to connect you with a human agent?"
)
LANGUAGE_TEXT = (
    "I'm sorry, I can only answer questions written in English for now. "
    "Would you like me to connect you with a human agent?"
)

#: The "I don't know" cut-off of an index built without dev questions (no fitted answerability model: the
#: confidence is then the best dense similarity); a fitted index carries the one its dev questions chose.
DEFAULT_CUT_OFF = 0.3

_LATIN = re.compile(r"[A-Za-z]")
_LETTER = re.compile(r"[^\W\d_]")


def overall_scale(score: float, line: float, overall: float) -> float:
    """An answerability ``score`` of a tenant whose "I don't know" line is ``line``, on the scale of the
    ``overall`` line: [0, line] stretched onto [0, overall] and [line, 1] onto [overall, 1].

    A tenant's own line (:func:`knowledge.calibration.tenant_cut_offs`) says its answerable questions score
    lower; every other threshold on answerability (the router's "retrieval is strong", the tier policy's "sure
    enough for tier 0 / tier 1") was set on the overall scale. Read there, a score just above the tenant's line
    sits just above the overall one, so those thresholds ask of each tenant what they ask overall, and the
    scores either side of the line keep their order and their side. ``score`` is clipped to [0, 1].
    """
    score = min(max(float(score), 0.0), 1.0)
    if line == overall or not 0.0 < line < 1.0:
        return score
    if score < line:  # below the line stays below it, rounding included
        return min(score * overall / line, math.nextafter(overall, 0.0))
    return overall + (score - line) * (1.0 - overall) / (1.0 - line)


@dataclass(frozen=True)
class Answer:
    """A reply for the user: ``answered`` is False when the knowledge base does not know (or refuses).

    ``confidence`` is the answerability score compared with the cut-off; ``mode`` says what the text is
    (``extractive``, ``idk`` or ``refused``) and ``fallback_reason`` why a question was refused
    (``unsupported_script``).
    """

    text: str
    sources: list[dict[str, str]] = field(default_factory=list)
    confidence: float = 0.0
    answered: bool = False
    mode: str = "idk"
    fallback_reason: str | None = None
    features: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Lookup:
    """One question's retrieval, as everything downstream uses it: the ``hits`` (hybrid, best first), the
    answerability ``confidence`` and its ``features``, the ``dense`` scores (router features), and the question
    vector (the extractive answer). ``refused`` names why a question is not looked up at all."""

    question: str
    tenant: str
    hits: list[Hit]
    confidence: float = 0.0
    features: dict[str, float] = field(default_factory=dict)
    dense: list[tuple[str, float]] = field(default_factory=list)  # (doc id, cosine) of the dense top_k
    query_vector: Any = None
    refused: str | None = None  # unsupported_script, empty
    focus: str = ""  # what the quoted passage must answer, when not the whole question (a follow-up's own)

    def focused_on(self, own: Lookup, topic_weight: float = FOLLOWUP_TOPIC_WEIGHT) -> Lookup:
        """This lookup of a follow-up read with its topic, quoting by the follow-up's own words: the topic finds the
        articles, and the passage is chosen by the sum of this lookup's vector (the topic and the follow-up),
        weighted ``topic_weight`` (:data:`FOLLOWUP_TOPIC_WEIGHT`, 0: not at all), and the follow-up's own: "how
        long does an SMS code work?" after a question about SMS codes quotes the code's lifetime, not the topic's
        answer again. ``own`` is the lookup of the follow-up alone."""
        if self.query_vector is None or own.query_vector is None:
            return self
        topic, words = (np.asarray(v, dtype=np.float32) for v in (self.query_vector, own.query_vector))
        both = topic_weight * topic / (np.linalg.norm(topic) or 1.0) + words / (np.linalg.norm(words) or 1.0)
        return replace(self, query_vector=both, focus=own.question)

    @property
    def dense_margin(self) -> float:
        """The best dense chunk's lead over the second (0 with fewer than two)."""
        return max(self.dense[0][1] - self.dense[1][1], 0.0) if len(self.dense) > 1 else 0.0

    def supporting_docs(self, cut_off: float) -> int:
        """Distinct documents among the dense top_k at least ``cut_off`` similar."""
        return len({doc for doc, score in self.dense if score >= cut_off})


def clean_question(question: str) -> str:
    """Collapse whitespace and cut the question to :data:`MAX_QUESTION_CHARS` characters."""
    return " ".join(str(question or "").split())[:MAX_QUESTION_CHARS]


def search_text(question: str) -> str:
    """What the retrievers read for a (cleaned) question: an order id as the word "order". No article holds a
    customer's order id: as a word the index does not know, "I'd like to send back ORD-20251, how do I do
    that?" looked unanswerable (answerability 0.05 against 0.96 for "... send back my order ..."). The lookup
    keeps the question as asked (the answer cache and the LLM tiers see the id)."""
    return " ".join(ORDER_ID_IN_TEXT.sub("order", question).split())


def unsupported_script(question: str) -> bool:
    """True for a question with letters but not one Latin letter (Chinese, Cyrillic, Arabic...)."""
    return bool(_LETTER.search(question)) and not _LATIN.search(question)


class KnowledgeBase:
    """A loaded knowledge index: chunks, vector store, BM25, answerability model and the extractive answerer
    (with the index's passage ranker and passage length, ``extractive``)."""

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
        ranker: Ranker | None = None,
    ):
        self._manifest = manifest
        self._embed_model = embed_model
        self._adapter = adapter
        self._dense = DenseRetriever(adapter.store, chunks, embed_model)
        self._bm25 = BM25Retriever(chunks)
        self._search = HybridSearch(self._dense, self._bm25, fusion=fusion, dense_weight=dense_weight)
        self.answerability = answerability or DenseScoreModel()
        passages = manifest.get("passages") or {}
        self.extractive = ExtractiveAnswerer(
            embed_model,
            ranker,
            max_chars=int(passages.get("max_chars", MAX_ANSWER_CHARS)),
            chunks=int(passages.get("chunks", PASSAGE_CHUNKS)),
            whole_section=bool(passages.get("whole_section", False)),
        )

    @classmethod
    def load(
        cls,
        index_dir: Path | str,
        embed_model: BaseEmbedding | None = None,
        *,
        store: StoreConfig | None = None,
        fusion: str | None = None,
        dense_weight: float | None = None,
    ) -> KnowledgeBase:
        """Open the index in ``index_dir`` (built by :func:`knowledge.index.build_index`).

        ``embed_model`` defaults to the local MiniLM; it must be the model the index was built with.
        An index whose vectors live in pgvector needs ``store`` (default: from the settings, see
        :mod:`knowledge.stores`). ``fusion``/``dense_weight`` default to what the build recorded.
        Raises ``FileNotFoundError`` without an index and ``ValueError`` on a model or store mismatch.
        """
        manifest = read_manifest(index_dir)
        if manifest.get("format") not in READABLE_FORMATS:
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
        kb = cls(
            read_chunks(index_dir),
            adapter,
            manifest,
            embed_model,
            answerability=load_model(index_dir),
            fusion=fusion or retrieval.get("fusion", "rrf"),
            dense_weight=float(
                dense_weight if dense_weight is not None else retrieval.get("dense_weight", 0.5)
            ),
            ranker=load_ranker(index_dir),
        )
        kb.extractive.load(index_dir)  # the passages' vectors, when build_index stored them
        return kb

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
        return self._hits(self._search.run(search_text(query), tenant, top_k, retriever).ranked)

    def answerability_features(
        self, question: str, tenant: str, exclude_docs: Sequence[str] = ()
    ) -> dict[str, float]:
        """The answerability features of ``question`` (``exclude_docs``: as if those documents were absent)."""
        retrieval = self._search.run(
            search_text(clean_question(question)) or " ", tenant, 10, "hybrid", both=True
        )
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

    @property
    def cut_off(self) -> float:
        """The answerability below which the bot says it does not know: the one ``build_index`` chose on the
        dev questions (``build_index.max_false_idk``), stored with the index; :data:`DEFAULT_CUT_OFF` for an
        index without a fitted model."""
        info = getattr(self.answerability, "info", None) or {}
        return float(info.get("suggested_min_score", DEFAULT_CUT_OFF))

    @property
    def tenant_cut_offs(self) -> dict[str, float]:
        """The tenants with a lower line of their own (``knowledge.calibration.tenant_cut_offs``), stored with
        the index."""
        info = getattr(self.answerability, "info", None) or {}
        return {tenant: float(line) for tenant, line in (info.get("tenant_min_scores") or {}).items()}

    def cut_off_for(self, tenant: str) -> float:
        """The tenant's "I don't know" line: lower than :attr:`cut_off` for a tenant whose answerable dev
        questions score lower (:attr:`tenant_cut_offs`), :attr:`cut_off` otherwise."""
        return self.tenant_cut_offs.get(tenant, self.cut_off)

    def on_overall_scale(self, score: float, tenant: str) -> float:
        """The tenant's answerability ``score`` read on the scale of :attr:`cut_off` (:func:`overall_scale`), the
        one the router's and the tier policy's thresholds are set on; unchanged for a tenant without a line of
        its own."""
        return overall_scale(score, self.cut_off_for(tenant), self.cut_off)

    def lookup(self, question: str, tenant: str, top_k: int = 3) -> Lookup:
        """One retrieval for ``question`` (hybrid, both retrievers): the hits, answerability and router
        features every later step uses. Never raises for odd input (``refused`` says why it was not run)."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        query = clean_question(question)
        if not query:
            return Lookup(query, tenant, [], refused="empty")
        if unsupported_script(query):
            return Lookup(query, tenant, [], refused="unsupported_script")
        retrieval = self._search.run(search_text(query), tenant, top_k, "hybrid", both=True)
        values = features(retrieval, self.chunks, self._bm25, tenant)
        return Lookup(
            question=query,
            tenant=tenant,
            hits=self._hits(retrieval.ranked),
            confidence=float(self.answerability.predict(values)),
            features=values,
            dense=[
                (self.chunks[item.position].doc_id, float(item.score)) for item in retrieval.dense[:top_k]
            ],
            query_vector=retrieval.query_vector,
        )

    def extract(self, found: Lookup, cut_off: float | None = None) -> Answer:
        """The extractive answer of a lookup, or "I don't know" under the cut-off (the tenant's by default;
        the evaluation moves it to draw the "I don't know" curve)."""
        if found.refused == "unsupported_script":
            return Answer(text=LANGUAGE_TEXT, mode="refused", fallback_reason="unsupported_script")
        line = self.cut_off_for(found.tenant) if cut_off is None else cut_off
        if not found.hits or found.confidence < line:
            return Answer(text=IDK_TEXT, confidence=found.confidence, mode="idk", features=found.features)
        text, sources = self.extractive.answer(found.query_vector, found.hits, found.focus or found.question)
        return Answer(
            text=text,
            sources=sources,
            confidence=found.confidence,
            answered=True,
            mode="extractive",
            features=found.features,
        )

    def answer(self, question: str, tenant: str, top_k: int = 3, cut_off: float | None = None) -> Answer:
        """:meth:`lookup` then :meth:`extract`: the extractive answer, or "I don't know". Never raises for odd
        input."""
        return self.extract(self.lookup(question, tenant, top_k), cut_off)

    def _hits(self, ranked: Sequence[Scored]) -> list[Hit]:
        return [Hit.of(self.chunks[item.position], item.score) for item in ranked]

    def clear_caches(self) -> None:
        """Forget cached question embeddings (latency benchmarks measure the embedding too)."""
        self._dense.embed.cache_clear()

    def close(self) -> None:
        """Release the vector store's connections."""
        self._adapter.close()


def _backend_for(manifest: dict[str, Any]) -> str | None:
    """The embedding back-end an index needs: int8 indexes need int8; others take the configured one."""
    return "onnx-int8" if str(manifest.get("embedding_model", "")).endswith(" int8") else None
