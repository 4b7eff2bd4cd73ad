"""Where cache entries live: our SQL store (SQLite by default, PostgreSQL alike) or Redis.

Both keep entries per (tenant, knowledge-base version) with an expiry time and never return an expired one.
Similarity is computed in-process (Redis 7.0 has no vector search): a backend only lists the live entries of a
scope. Entry keys are the hash of the normalised question; a second ``put`` of the same key replaces it.

Retention (app/data/retention.py) asks both to forget a user (``forget_user``: the entries their questions
created) and to drop what has expired (``purge_expired``): the SQL backend's run in retention's transaction
(:class:`AnswerCacheRetention`, registered below), the Redis backend is handed to retention by its caller.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

import numpy as np
import sqlalchemy as sa

from app.data import retention
from app.data.schema import answer_cache


@dataclass(frozen=True)
class CacheEntry:
    """One cached answer. ``user_id``: whose question created it (entries are shared within the tenant)."""

    tenant_id: str
    kb_version: str
    key: str
    question: str
    answer: str
    embedding: np.ndarray
    user_id: str
    created_at: float
    expires_at: float
    tier: int | None = None
    model: str | None = None

    def live(self, now: float) -> bool:
        return self.expires_at > now


class CacheBackend(Protocol):
    """Storage for :class:`CacheEntry` rows, scoped by tenant and knowledge-base version."""

    def put(self, entry: CacheEntry) -> None: ...

    def get(self, tenant_id: str, kb_version: str, key: str, now: float) -> CacheEntry | None: ...

    def entries(self, tenant_id: str, kb_version: str, now: float, limit: int) -> list[CacheEntry]: ...

    def purge(self, tenant_id: str, now: float, keep_kb_version: str | None = None) -> int: ...


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class SqlCacheBackend:
    """Entries in the ``answer_cache`` table of our store (migration 0002)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(self, entry: CacheEntry) -> None:
        values = {
            "tenant_id": entry.tenant_id,
            "user_id": entry.user_id,
            "kb_version": entry.kb_version,
            "key_hash": entry.key,
            "question": entry.question,
            "answer": entry.answer,
            "embedding": np.asarray(entry.embedding, dtype=np.float32).tobytes(),
            "tier": entry.tier,
            "model": entry.model,
            "created_at": _dt(entry.created_at),
            "expires_at": _dt(entry.expires_at),
        }
        scope = self._scope(entry.tenant_id, entry.kb_version)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.delete(answer_cache).where(scope, answer_cache.c.key_hash == entry.key))
                conn.execute(sa.insert(answer_cache).values(**values))
        except sa.exc.IntegrityError:
            pass  # a concurrent writer stored the same question first: its answer stands

    def get(self, tenant_id: str, kb_version: str, key: str, now: float) -> CacheEntry | None:
        query = sa.select(answer_cache).where(
            self._scope(tenant_id, kb_version),
            answer_cache.c.key_hash == key,
            answer_cache.c.expires_at > _dt(now),
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return self._entry(row) if row else None

    def entries(self, tenant_id: str, kb_version: str, now: float, limit: int) -> list[CacheEntry]:
        query = (
            sa.select(answer_cache)
            .where(self._scope(tenant_id, kb_version), answer_cache.c.expires_at > _dt(now))
            .order_by(answer_cache.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [self._entry(row) for row in conn.execute(query).mappings()]

    def purge(self, tenant_id: str, now: float, keep_kb_version: str | None = None) -> int:
        """Delete the tenant's expired entries, and those of every other kb version when one is kept."""
        stale = answer_cache.c.expires_at <= _dt(now)
        if keep_kb_version is not None:
            stale = sa.or_(stale, answer_cache.c.kb_version != keep_kb_version)
        with self.engine.begin() as conn:
            return conn.execute(
                sa.delete(answer_cache).where(answer_cache.c.tenant_id == tenant_id, stale)
            ).rowcount

    @staticmethod
    def forget_user(conn: sa.Connection, tenant_id: str, user_id: str, dry_run: bool = False) -> int:
        """Delete (or count) the tenant's entries ``user_id``'s questions created, in the caller's
        transaction ``conn``."""
        mine = sa.and_(answer_cache.c.tenant_id == tenant_id, answer_cache.c.user_id == user_id)
        return retention.count_or_delete(conn, answer_cache, mine, dry_run)

    @staticmethod
    def purge_expired(conn: sa.Connection, now: float, dry_run: bool = False) -> int:
        """Delete (or count) every tenant's entries expired at ``now``, in the caller's transaction ``conn``."""
        return retention.count_or_delete(conn, answer_cache, answer_cache.c.expires_at <= _dt(now), dry_run)

    @staticmethod
    def _scope(tenant_id: str, kb_version: str) -> sa.ColumnElement[bool]:
        return sa.and_(answer_cache.c.tenant_id == tenant_id, answer_cache.c.kb_version == kb_version)

    @staticmethod
    def _entry(row: sa.RowMapping) -> CacheEntry:
        return CacheEntry(
            tenant_id=row["tenant_id"],
            kb_version=row["kb_version"],
            key=row["key_hash"],
            question=row["question"],
            answer=row["answer"],
            embedding=np.frombuffer(row["embedding"], dtype=np.float32),
            user_id=row["user_id"],
            created_at=_ts(row["created_at"]),
            expires_at=_ts(row["expires_at"]),
            tier=row["tier"],
            model=row["model"],
        )


# KEYS[1] entry hash, KEYS[2] the scope's index; ARGV[1] user id, ARGV[2] entry key. Atomic, so an entry
# another user re-created between a check and a delete is never removed by mistake.
_FORGET_ENTRY_LUA = """
if redis.call('HGET', KEYS[1], 'user_id') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisCacheBackend:
    """Entries as Redis hashes with native expiry; a sorted set per scope indexes them by expiry time.

    Keys: ``{prefix}:{tenant}:{kb_version}:e:{key}`` (hash) and ``{prefix}:{tenant}:{kb_version}:idx``
    (sorted set, score = expiry). Tenant and version are URL-quoted, so a ``:`` in them cannot mix scopes,
    and ``:e:`` splits an entry's name into its scope and key unambiguously.
    """

    def __init__(self, client, prefix: str = "switchboard:cache") -> None:  # noqa: ANN001 - redis.Redis
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("the Redis client must use decode_responses=False (embeddings are bytes)")
        self.redis = client
        self.prefix = prefix

    def _scope_key(self, tenant_id: str, kb_version: str) -> str:
        return f"{self.prefix}:{quote(tenant_id, safe='')}:{quote(kb_version, safe='')}"

    def put(self, entry: CacheEntry) -> None:
        scope = self._scope_key(entry.tenant_id, entry.kb_version)
        key = f"{scope}:e:{entry.key}"
        expire_ms = int(entry.expires_at * 1000)
        mapping = {
            "tenant_id": entry.tenant_id,
            "kb_version": entry.kb_version,
            "question": entry.question,
            "answer": entry.answer,
            "embedding": np.asarray(entry.embedding, dtype=np.float32).tobytes(),
            "user_id": entry.user_id,
            "created_at": repr(entry.created_at),
            "expires_at": repr(entry.expires_at),
            "tier": "" if entry.tier is None else str(entry.tier),
            "model": entry.model or "",
        }
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=mapping)
        pipe.pexpireat(key, expire_ms)
        pipe.zadd(f"{scope}:idx", {entry.key: entry.expires_at})
        pipe.pexpireat(f"{scope}:idx", expire_ms, gt=True)
        pipe.pexpireat(f"{scope}:idx", expire_ms, nx=True)
        pipe.execute()

    def get(self, tenant_id: str, kb_version: str, key: str, now: float) -> CacheEntry | None:
        data = self.redis.hgetall(f"{self._scope_key(tenant_id, kb_version)}:e:{key}")
        entry = self._entry(key, data) if data else None
        return entry if entry is not None and entry.live(now) else None

    def entries(self, tenant_id: str, kb_version: str, now: float, limit: int) -> list[CacheEntry]:
        scope = self._scope_key(tenant_id, kb_version)
        self.redis.zremrangebyscore(f"{scope}:idx", "-inf", now)
        keys = [k.decode() for k in self.redis.zrevrange(f"{scope}:idx", 0, max(0, limit - 1))]
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(f"{scope}:e:{key}")
        found = []
        for key, data in zip(keys, pipe.execute(), strict=True):
            entry = self._entry(key, data) if data else None
            if entry is not None and entry.live(now):
                found.append(entry)
        return found

    def purge(self, tenant_id: str, now: float, keep_kb_version: str | None = None) -> int:
        """Delete the tenant's entries of every kb version but ``keep_kb_version`` (expired ones expire by
        themselves)."""
        removed = 0
        tenant_prefix = f"{self.prefix}:{quote(tenant_id, safe='')}:"
        keep = f"{tenant_prefix}{quote(keep_kb_version, safe='')}:" if keep_kb_version is not None else None
        for raw in self.redis.scan_iter(match=f"{tenant_prefix}*", count=500):
            name = raw.decode()
            is_index = name.endswith(":idx")
            if keep is not None and name.startswith(keep):
                if is_index:
                    self.redis.zremrangebyscore(name, "-inf", now)
                continue
            deleted = self.redis.delete(name)
            removed += 0 if is_index else deleted
        return removed

    def forget_user(self, tenant_id: str, user_id: str, dry_run: bool = False) -> int:
        """Delete (or count) the tenant's entries whose stored ``user_id`` is ``user_id``, each checked and
        deleted atomically (with its index member) by a Lua script."""
        pattern = f"{_glob_escape(self.prefix)}:{quote(tenant_id, safe='')}:*:e:*"
        forget = self.redis.register_script(_FORGET_ENTRY_LUA)
        found = 0
        for raw in self.redis.scan_iter(match=pattern, count=500):
            name = raw.decode() if isinstance(raw, bytes) else raw
            scope, _, key = name.rpartition(":e:")
            if dry_run:
                stored = self.redis.hget(name, "user_id")
                found += int(stored is not None and stored.decode() == user_id)
            else:
                found += int(forget(keys=[name, f"{scope}:idx"], args=[user_id, key]))
        return found

    def purge_expired(self, now: float, dry_run: bool = False) -> int:
        """Remove (or count) expired members of every scope index; the entry hashes expire by themselves."""
        removed = 0
        for raw in self.redis.scan_iter(match=f"{_glob_escape(self.prefix)}:*:idx", count=500):
            if dry_run:
                removed += int(self.redis.zcount(raw, "-inf", now))
            else:
                removed += int(self.redis.zremrangebyscore(raw, "-inf", now))
        return removed

    @staticmethod
    def _entry(key: str, data: dict[bytes, bytes]) -> CacheEntry | None:
        try:
            tier = data.get(b"tier", b"").decode()
            return CacheEntry(
                tenant_id=data[b"tenant_id"].decode(),
                kb_version=data[b"kb_version"].decode(),
                key=key,
                question=data[b"question"].decode(),
                answer=data[b"answer"].decode(),
                embedding=np.frombuffer(data[b"embedding"], dtype=np.float32),
                user_id=data[b"user_id"].decode(),
                created_at=float(data[b"created_at"]),
                expires_at=float(data[b"expires_at"]),
                tier=int(tier) if tier else None,
                model=data.get(b"model", b"").decode() or None,
            )
        except (KeyError, ValueError):
            return None  # a half-written or foreign hash is not an entry


class AnswerCacheRetention:
    """The SQL answer cache under retention (the ``answer_cache`` table, in retention's transaction)."""

    table = "answer_cache"

    def forget_user(
        self, conn: sa.Connection, request: retention.ForgetRequest, report: retention.Report
    ) -> None:
        report.counts["answer_cache"] = SqlCacheBackend.forget_user(
            conn, request.tenant_id, request.user_id, report.dry_run
        )

    def purge(self, conn: sa.Connection, request: retention.PurgeRequest, report: retention.Report) -> None:
        if request.policy.expired_cache:
            report.counts["answer_cache"] = SqlCacheBackend.purge_expired(
                conn, request.now.timestamp(), report.dry_run
            )


retention.register(AnswerCacheRetention())


def now_s() -> float:
    """Wall-clock seconds (entries carry absolute expiry times, shared by processes)."""
    return time.time()
