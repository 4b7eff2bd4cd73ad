"""Exact-match and semantic caches of generated answers, scoped by tenant and knowledge-base version.

- Exact: the normalised question's hash within the scope.
- Semantic: the scope's live entries are compared in-process. Candidates within ``pool`` below the cosine
  ``threshold`` are kept for ranking, entries that disagree with the question on numbers, negation, opposites
  or entities are dropped (:mod:`app.cache.agreement`), the rest are ranked by ``cosine + lexical_weight *
  lexical similarity``. The best one is a hit when its cosine reaches ``threshold`` and it beats the runner-up
  by ``margin`` (two cached questions about equally close to the question: the cache cannot tell which one is
  meant, so it answers neither); a dropped entry that scores as high (within ``margin``) blocks the hit too:
  when the closest entry disagrees with the question, a runner-up is no safe answer either.

Personal answers (built from a user's CRM data) are never stored: :meth:`AnswerCache.store` requires the caller
to say whether an answer is personal. A new ``kb_version`` makes older entries invisible at once (lookups only
read the current version) and :meth:`AnswerCache.purge` deletes them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field

from app.cache.agreement import AgreementRules, disagreements, lexical_similarity
from app.cache.backends import CacheBackend, CacheEntry, now_s
from app.cache.embeddings import Embedder
from app.settings import Settings, get_settings, validate_section

logger = structlog.get_logger(__name__)


def normalise_question(question: str) -> str:
    """Case-folded, whitespace collapsed, trailing punctuation removed: the exact cache's key text."""
    return re.sub(r"[\s?!.]+$", "", " ".join(str(question).casefold().split()))


def question_key(question: str) -> str:
    """SHA-256 of the normalised question."""
    return hashlib.sha256(normalise_question(question).encode()).hexdigest()


class SemanticSettings(BaseModel):
    """``cache.semantic`` in params.yaml; chosen on half of the paraphrase pairs (benchmarks/cache.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    threshold: float = Field(0.75, gt=0, le=1, description="minimum cosine of a hit")
    margin: float = Field(0.02, ge=0, le=1, description="the best must beat the runner-up by this score")
    lexical_weight: float = Field(0.4, ge=0, le=1, description="weight of lexical similarity in the score")
    pool: float = Field(0.05, ge=0, le=1, description="candidates this far below the threshold still rank")
    top_k: int = Field(10, ge=1, le=100, description="nearest entries considered")
    max_entries: int = Field(5000, ge=1, description="most recent entries of a scope compared per lookup")
    check_numbers: bool = True
    check_negation: bool = True
    check_contrast: bool = True
    check_entities: bool = True
    negation_max_words: int = Field(25, ge=1)
    contrast_pairs: list[tuple[str, str]] = Field(default_factory=list, description="added to the built-in")

    def rules(self) -> AgreementRules:
        base = AgreementRules(
            self.check_numbers, self.check_negation, self.check_contrast, self.check_entities,
            self.negation_max_words,
        )  # fmt: skip
        return base.with_pairs(self.contrast_pairs)


class CacheSettings(BaseModel):
    """The ``cache`` section of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    backend: Literal["sql", "redis"] = "sql"
    redis_url: str = Field("", description="redis://host:port/db when backend is redis (env may override)")
    key_prefix: str = "switchboard:cache"
    ttl_s: int = Field(86400, ge=1, description="entry lifetime in seconds")
    embedder: Literal["minilm", "hashing"] = "minilm"
    semantic: SemanticSettings = Field(default_factory=SemanticSettings)

    @classmethod
    def from_params(
        cls, section: Mapping[str, Any] | None, overrides: Mapping[str, str] | None = None
    ) -> CacheSettings:
        """From a ``cache`` section given as a mapping. Non-empty ``overrides`` (``backend``, ``redis_url``) win;
        default: the settings' ``cache_backend`` and ``cache_redis_url`` (``SWITCHBOARD_CACHE_BACKEND`` and
        ``SWITCHBOARD_CACHE_REDIS_URL``, environment or ``.env``)."""
        if overrides is None:
            overrides = _overrides(get_settings())
        data = {**(section or {}), **{k: v for k, v in overrides.items() if v}}
        return validate_section("cache", cls, data)

    @classmethod
    def from_settings(cls, settings: Settings) -> CacheSettings:
        """params.yaml ``cache`` of ``settings`` with its environment overrides."""
        return cls.from_params(settings.params_section("cache"), _overrides(settings))


def _overrides(settings: Settings) -> dict[str, str]:
    return {"backend": settings.cache_backend, "redis_url": settings.cache_redis_url}


@dataclass(frozen=True)
class Match:
    """The semantic matcher's verdict on one query."""

    index: int | None  # position of the matched candidate, None for no hit
    cosine: float
    score: float
    reason: str


class SemanticMatcher:
    """Chooses the cached question that means the same as a query, or none (see the module docstring)."""

    def __init__(self, settings: SemanticSettings | None = None) -> None:
        self.settings = settings or SemanticSettings()
        self.rules = self.settings.rules()

    def match(self, query: str, query_vector: np.ndarray, texts: Sequence[str], vectors: np.ndarray) -> Match:
        s = self.settings
        if len(texts) == 0:
            return Match(None, 0.0, 0.0, "empty cache")
        cosines = np.asarray(vectors, dtype=np.float32) @ np.asarray(query_vector, dtype=np.float32)
        order = np.argsort(-cosines)[: s.top_k]
        pool = [int(i) for i in order if cosines[i] >= s.threshold - s.pool]
        if not pool:
            return Match(
                None, float(cosines[order[0]]), 0.0, f"best cosine {cosines[order[0]]:.3f} below threshold"
            )
        ranked: list[tuple[float, float, int]] = []
        vetoed: list[tuple[float, str]] = []
        for i in pool:
            score = float(cosines[i]) + s.lexical_weight * lexical_similarity(query, texts[i])
            problems = disagreements(query, texts[i], self.rules)
            if problems:
                vetoed.append((score, "+".join(problems)))
            else:
                ranked.append((score, float(cosines[i]), i))
        if not ranked:
            reasons = ", ".join(reason for _, reason in vetoed)
            return Match(None, float(cosines[pool[0]]), 0.0, f"candidates disagree: {reasons}")
        ranked.sort(reverse=True)
        score, cosine, best = ranked[0]
        if cosine < s.threshold:
            return Match(None, cosine, score, f"best cosine {cosine:.3f} below threshold {s.threshold}")
        if len(ranked) > 1 and score - ranked[1][0] < s.margin:
            return Match(None, cosine, score, f"ambiguous: runner-up within {s.margin} of the best")
        closer = [reason for vetoed_score, reason in vetoed if vetoed_score >= score - s.margin]
        if closer:  # the question is (about) closest to an entry that disagrees with it: serve no runner-up
            return Match(None, cosine, score, f"a closer entry disagrees ({closer[0]})")
        return Match(best, cosine, score, f"cosine {cosine:.3f}, score {score:.3f}")


@dataclass(frozen=True)
class CacheHit:
    """A cached answer for a question: ``kind`` exact or semantic."""

    answer: str
    kind: Literal["exact", "semantic"]
    matched_question: str
    similarity: float
    entry: CacheEntry


class AnswerCache:
    """The exact and semantic caches over one backend."""

    def __init__(
        self,
        backend: CacheBackend,
        embedder: Embedder,
        settings: CacheSettings | None = None,
        *,
        clock: Any = now_s,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.settings = settings or CacheSettings()
        self.matcher = SemanticMatcher(self.settings.semantic)
        self._clock = clock

    @staticmethod
    def _check_scope(tenant_id: str, kb_version: str) -> None:
        if not tenant_id or not kb_version:
            raise ValueError("tenant_id and kb_version are required: cache entries are scoped by both")

    def lookup(self, tenant_id: str, kb_version: str, question: str) -> CacheHit | None:
        """The cached answer for ``question`` in this tenant's current knowledge base, or None."""
        self._check_scope(tenant_id, kb_version)
        if not self.settings.enabled or not question.strip():
            return None
        now = self._clock()
        entry = self.backend.get(tenant_id, kb_version, question_key(question), now)
        if entry is not None:
            logger.info("cache.hit", kind="exact", tenant_id=tenant_id, kb_version=kb_version)
            return CacheHit(entry.answer, "exact", entry.question, 1.0, entry)
        if not self.settings.semantic.enabled:
            return None
        entries = self.backend.entries(tenant_id, kb_version, now, self.settings.semantic.max_entries)
        if not entries:  # nothing to compare with: no need to embed the question
            return None
        query_vector = self.embedder.encode([question])[0]
        entries = [e for e in entries if e.embedding.shape == query_vector.shape]
        if not entries:
            return None
        match = self.matcher.match(
            question, query_vector, [e.question for e in entries], np.stack([e.embedding for e in entries])
        )
        if match.index is None:
            logger.info("cache.miss", tenant_id=tenant_id, kb_version=kb_version, reason=match.reason)
            return None
        hit = entries[match.index]
        logger.info(
            "cache.hit", kind="semantic", tenant_id=tenant_id, kb_version=kb_version, reason=match.reason
        )
        return CacheHit(hit.answer, "semantic", hit.question, match.cosine, hit)

    def store(
        self,
        tenant_id: str,
        user_id: str,
        kb_version: str,
        question: str,
        answer: str,
        *,
        personal: bool,
        tier: int | None = None,
        model: str | None = None,
    ) -> bool:
        """Cache a generated answer; returns whether it was stored. Personal answers never are."""
        self._check_scope(tenant_id, kb_version)
        if not user_id:
            raise ValueError("user_id is required (who caused the entry)")
        if personal:
            logger.info("cache.skip_personal", tenant_id=tenant_id, user_id=user_id)
            return False
        if not self.settings.enabled or not question.strip() or not answer.strip():
            return False
        now = self._clock()
        self.backend.put(
            CacheEntry(
                tenant_id=tenant_id,
                kb_version=kb_version,
                key=question_key(question),
                question=question.strip(),
                answer=answer,
                embedding=self.embedder.encode([question])[0],
                user_id=user_id,
                created_at=now,
                expires_at=now + self.settings.ttl_s,
                tier=tier,
                model=model,
            )
        )
        return True

    def purge(self, tenant_id: str, keep_kb_version: str | None = None) -> int:
        """Delete the tenant's expired entries and, with ``keep_kb_version``, all other versions' entries."""
        return self.backend.purge(tenant_id, self._clock(), keep_kb_version)


def build_cache(
    settings: CacheSettings,
    *,
    engine: Any = None,
    redis_client: Any = None,
    embedder: Embedder | None = None,
) -> AnswerCache:
    """The cache the settings describe: SQL on ``engine`` (default) or Redis (``redis_client`` or
    ``settings.redis_url``)."""
    from app.cache.backends import RedisCacheBackend, SqlCacheBackend
    from app.cache.embeddings import HashingEmbedder, MiniLMEmbedder

    if embedder is None:
        embedder = MiniLMEmbedder() if settings.embedder == "minilm" else HashingEmbedder()
    if settings.backend == "redis":
        if redis_client is None:
            if not settings.redis_url:
                raise ValueError("cache.backend is redis but cache.redis_url is empty")
            import redis

            redis_client = redis.Redis.from_url(
                settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
            )
        backend: CacheBackend = RedisCacheBackend(redis_client, settings.key_prefix)
    else:
        if engine is None:
            raise ValueError(
                "the sql cache backend needs an engine (app.data.db.get_engine(settings.db_url))"
            )
        backend = SqlCacheBackend(engine)
    return AnswerCache(backend, embedder, settings)
