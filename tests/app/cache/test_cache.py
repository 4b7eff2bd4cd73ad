"""Exact and semantic answer caches on every backend: SQLite, PostgreSQL (when there) and Redis (when there)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
import sqlalchemy as sa

from app.cache import (
    AnswerCache,
    CacheSettings,
    HashingEmbedder,
    RedisCacheBackend,
    SemanticSettings,
    SqlCacheBackend,
    build_cache,
    question_key,
)
from app.data.db import get_engine, upgrade
from app.data.schema import answer_cache

KB1, KB2 = "kb-v1", "kb-v2"
QUESTION = "How long does delivery to Germany take?"
ANSWER = "Delivery to Germany takes 2-3 working days."
# the hashing embedder only sees shared words: this paraphrase shares most of them
PARAPHRASE = "how long does the delivery to germany take please"
# the tests' semantic settings are tuned to the hashing embedder, not to MiniLM
HASHING_SEMANTIC = SemanticSettings(threshold=0.6, margin=0.02, lexical_weight=0.2, pool=0.05)


class Clock:
    """Wall-clock time that a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def backend(request) -> Iterator[Any]:
    if request.param == "redis":
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        client = redis.Redis.from_url(url)
        yield RedisCacheBackend(client, prefix)
        client.close()
        return
    url = request.getfixturevalue(f"{request.param}_url")
    upgrade(url)
    yield SqlCacheBackend(get_engine(url))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(backend, clock: Clock) -> AnswerCache:
    return AnswerCache(
        backend, HashingEmbedder(), CacheSettings(ttl_s=3600, semantic=HASHING_SEMANTIC), clock=clock
    )


def store(cache: AnswerCache, question: str = QUESTION, answer: str = ANSWER, **kw) -> bool:
    args = {"tenant_id": "acme", "user_id": "alice", "kb_version": KB1, "personal": False} | kw
    return cache.store(
        args.pop("tenant_id"), args.pop("user_id"), args.pop("kb_version"), question, answer, **args
    )


def test_exact_hit_ignores_case_spacing_and_trailing_punctuation(cache: AnswerCache) -> None:
    assert store(cache, tier=1, model="small")
    hit = cache.lookup("acme", KB1, "  how long does DELIVERY to germany   take ")
    assert hit is not None and hit.kind == "exact" and hit.answer == ANSWER
    assert (hit.entry.user_id, hit.entry.tier, hit.entry.model) == ("alice", 1, "small")


def test_semantic_hit_on_a_paraphrase(cache: AnswerCache) -> None:
    store(cache)
    hit = cache.lookup("acme", KB1, PARAPHRASE)
    assert hit is not None and hit.kind == "semantic" and hit.answer == ANSWER
    assert hit.matched_question == QUESTION and hit.similarity >= HASHING_SEMANTIC.threshold


def test_unrelated_questions_miss(cache: AnswerCache) -> None:
    store(cache)
    assert cache.lookup("acme", KB1, "What payment methods do you accept?") is None


def test_the_second_check_stops_close_but_different_questions(cache: AnswerCache) -> None:
    store(cache, "Can I return shoes after 30 days?", "Yes, within 30 days.")
    store(cache, "How do I enable two-factor authentication?", "Settings > Security > Enable.")
    store(cache, "Do you ship to Germany?", "Yes, we ship to Germany.")
    assert cache.lookup("acme", KB1, "Can I return shoes after 60 days?") is None
    assert cache.lookup("acme", KB1, "How do I disable two-factor authentication?") is None
    assert cache.lookup("acme", KB1, "Do you ship to France?") is None
    # while the same questions, reworded, still hit
    assert cache.lookup("acme", KB1, "can i return my shoes after 30 days").answer == "Yes, within 30 days."


def test_the_second_check_matters(backend, clock: Clock) -> None:
    """Without it, the hashing embedder alone would serve the 30-day answer to the 60-day question."""
    loose = SemanticSettings(**HASHING_SEMANTIC.model_dump(exclude={"check_numbers"}), check_numbers=False)
    cache = AnswerCache(backend, HashingEmbedder(), CacheSettings(semantic=loose), clock=clock)
    store(cache, "Can I return shoes after 30 days?", "Yes, within 30 days.")
    assert cache.lookup("acme", KB1, "Can I return shoes after 60 days?") is not None


def test_ttl(cache: AnswerCache, clock: Clock) -> None:
    store(cache)
    clock.offset = 3599
    assert cache.lookup("acme", KB1, QUESTION) is not None
    clock.offset = 3601
    assert cache.lookup("acme", KB1, QUESTION) is None
    assert cache.lookup("acme", KB1, PARAPHRASE) is None
    assert cache.purge("acme") == 1


def test_tenants_are_isolated(cache: AnswerCache) -> None:
    store(cache, tenant_id="acme")
    assert cache.lookup("globex", KB1, QUESTION) is None
    assert cache.lookup("globex", KB1, PARAPHRASE) is None
    store(cache, answer="Globex ships in 5 days.", tenant_id="globex", user_id="bob")
    assert cache.lookup("globex", KB1, QUESTION).answer == "Globex ships in 5 days."
    assert cache.lookup("acme", KB1, QUESTION).answer == ANSWER


def test_a_new_kb_version_invalidates(cache: AnswerCache) -> None:
    store(cache, kb_version=KB1)
    assert cache.lookup("acme", KB2, QUESTION) is None
    assert cache.lookup("acme", KB2, PARAPHRASE) is None
    store(cache, answer="New answer.", kb_version=KB2)
    assert cache.purge("acme", keep_kb_version=KB2) == 1
    assert cache.lookup("acme", KB1, QUESTION) is None
    assert cache.lookup("acme", KB2, QUESTION).answer == "New answer."


def test_personal_answers_are_never_cached(cache: AnswerCache, backend) -> None:
    assert not store(cache, "Where is my order ORD-10042?", "It ships tomorrow to 1 Main St.", personal=True)
    assert cache.lookup("acme", KB1, "Where is my order ORD-10042?") is None
    assert backend.entries("acme", KB1, time.time(), 100) == []
    with pytest.raises(TypeError):
        cache.store("acme", "alice", KB1, QUESTION, ANSWER)  # the caller must say whether it is personal


def test_a_second_store_replaces_the_entry(cache: AnswerCache, backend) -> None:
    store(cache)
    store(cache, answer="Updated.", user_id="bob")
    assert cache.lookup("acme", KB1, QUESTION).answer == "Updated."
    assert len(backend.entries("acme", KB1, time.time(), 100)) == 1


def test_scope_and_input_errors(cache: AnswerCache) -> None:
    with pytest.raises(ValueError, match="kb_version"):
        cache.lookup("acme", "", QUESTION)
    with pytest.raises(ValueError, match="tenant_id"):
        store(cache, tenant_id="")
    with pytest.raises(ValueError, match="user_id"):
        store(cache, user_id="")
    assert cache.lookup("acme", KB1, "   ") is None
    assert not store(cache, answer="  ")


def test_ambiguous_candidates_do_not_hit(backend, clock: Clock) -> None:
    """Two cached questions about equally close to the query: the cache cannot tell which one is meant."""
    settings = CacheSettings(semantic=SemanticSettings(threshold=0.5, margin=0.1, lexical_weight=0.0))
    cache = AnswerCache(backend, HashingEmbedder(), settings, clock=clock)
    store(cache, "delivery time to germany by boat", "A")
    store(cache, "delivery time to germany by train", "B")
    assert cache.lookup("acme", KB1, "delivery time to germany") is None
    strict = AnswerCache(backend, HashingEmbedder(), CacheSettings(semantic=SemanticSettings(
        threshold=0.5, margin=0.0, lexical_weight=0.0)), clock=clock)  # fmt: skip
    assert strict.lookup("acme", KB1, "delivery time to germany").answer == "A"


def test_disabled_caches(backend, clock: Clock) -> None:
    off = AnswerCache(backend, HashingEmbedder(), CacheSettings(enabled=False), clock=clock)
    assert not store(off)
    exact_only = AnswerCache(backend, HashingEmbedder(), CacheSettings(semantic=SemanticSettings(enabled=False)),
                             clock=clock)  # fmt: skip
    store(exact_only)
    assert exact_only.lookup("acme", KB1, QUESTION) is not None
    assert exact_only.lookup("acme", KB1, PARAPHRASE) is None


def test_redis_keys_carry_tenant_and_kb_version_and_expire(
    redis_url: str, redis_prefix: str, clock: Clock
) -> None:
    client = redis.Redis.from_url(redis_url)
    cache = AnswerCache(RedisCacheBackend(client, redis_prefix), HashingEmbedder(), CacheSettings(ttl_s=600),
                        clock=clock)  # fmt: skip
    store(cache, tenant_id="acme:eu")  # a ':' in a tenant id cannot mix scopes
    key = f"{redis_prefix}:acme%3Aeu:{KB1}:e:{question_key(QUESTION)}"
    assert client.exists(key)
    assert 0 < client.pttl(key) <= 600_000
    assert client.hget(key, "user_id") == b"alice"
    assert 0 < client.pttl(f"{redis_prefix}:acme%3Aeu:{KB1}:idx") <= 600_000
    with pytest.raises(ValueError, match="decode_responses"):
        RedisCacheBackend(redis.Redis.from_url(redis_url, decode_responses=True))
    client.close()


def test_sql_rows_carry_tenant_user_and_version(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = get_engine(sqlite_url)
    cache = AnswerCache(SqlCacheBackend(engine), HashingEmbedder(), CacheSettings(ttl_s=60))
    store(cache)
    with engine.connect() as conn:
        row = conn.execute(sa.select(answer_cache)).mappings().one()
    assert (row["tenant_id"], row["user_id"], row["kb_version"]) == ("acme", "alice", KB1)
    assert np.frombuffer(row["embedding"], dtype=np.float32).shape == (256,)


def test_build_cache_from_settings(
    sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    upgrade(sqlite_url)
    sql = build_cache(CacheSettings(embedder="hashing"), engine=get_engine(sqlite_url))
    assert isinstance(sql.backend, SqlCacheBackend)
    monkeypatch.setenv("SWITCHBOARD_CACHE_BACKEND", "redis")
    monkeypatch.setenv("SWITCHBOARD_CACHE_REDIS_URL", redis_url)
    settings = CacheSettings.from_params({"embedder": "hashing"})
    assert (settings.backend, settings.redis_url) == ("redis", redis_url)
    assert isinstance(build_cache(settings).backend, RedisCacheBackend)
    with pytest.raises(ValueError, match="engine"):
        build_cache(CacheSettings(embedder="hashing"))
    with pytest.raises(ValueError, match="invalid `cache` section"):
        CacheSettings.from_params({"backend": "memcached"}, overrides={})


def test_an_empty_scope_answers_without_embedding_the_question(backend, clock: Clock) -> None:
    class CountingEmbedder(HashingEmbedder):
        calls = 0

        def encode(self, texts):
            CountingEmbedder.calls += 1
            return super().encode(texts)

    cache = AnswerCache(
        backend, CountingEmbedder(), CacheSettings(ttl_s=3600, semantic=HASHING_SEMANTIC), clock=clock
    )
    assert cache.lookup("acme", KB1, "How long do refunds take?") is None
    assert CountingEmbedder.calls == 0  # nothing cached in this scope: nothing to compare with
    store(cache)
    before = CountingEmbedder.calls
    cache.lookup("acme", KB1, "something else entirely")
    assert CountingEmbedder.calls == before + 1
