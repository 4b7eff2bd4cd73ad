"""Caches of generated answers: exact and semantic, per tenant and knowledge-base version, SQL or Redis."""

from app.cache.agreement import AgreementRules, disagreements, lexical_similarity
from app.cache.backends import CacheEntry, RedisCacheBackend, SqlCacheBackend
from app.cache.cache import (
    AnswerCache,
    CacheHit,
    CacheSettings,
    Match,
    SemanticMatcher,
    SemanticSettings,
    build_cache,
    normalise_question,
    question_key,
)
from app.cache.embeddings import Embedder, HashingEmbedder, MiniLMEmbedder

__all__ = [
    "AgreementRules",
    "AnswerCache",
    "CacheEntry",
    "CacheHit",
    "CacheSettings",
    "Embedder",
    "HashingEmbedder",
    "Match",
    "MiniLMEmbedder",
    "RedisCacheBackend",
    "SemanticMatcher",
    "SemanticSettings",
    "SqlCacheBackend",
    "build_cache",
    "disagreements",
    "lexical_similarity",
    "normalise_question",
    "question_key",
]
