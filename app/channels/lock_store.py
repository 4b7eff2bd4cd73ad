"""A Redis lock store whose ticket bookkeeping is atomic across Rasa replicas (loaded by the Rasa server).

Rasa 3.6's ``RedisLockStore`` keeps each conversation's ticket lock as one JSON value and updates it by
read-modify-write (issue a ticket, finish serving, drop expired tickets, delete the lock) with no
transaction. Two replicas that take a message of the same conversation at the same moment can both read the
lock, both append "their" ticket and both write: one ticket is lost, and its turn then runs at the same
time as another one, so events of one turn are lost from the tracker (seen in
``tests/e2e/test_scale_out.py`` under load; RasaHQ/rasa#11256 describes the race, its fix was reverted from
the open-source edition). Here every read-modify-write of a lock runs under a short Redis mutex per
conversation (redis-py's ``Lock``: ``SET NX PX`` and a compare-and-delete release), so tickets are issued
and served strictly in order. Waiting for one's turn stays Rasa's own loop.

While Redis cannot be reached (stopped, restarting), a turn takes this replica's own in-memory lock instead
of failing: the bot keeps answering, and turns of one conversation stay serialised on each replica but not
across replicas until Redis is back (one user typing one message at a time never notices; two messages of
one conversation at the same moment on two replicas could interleave). Rasa's own store would fail every
turn until Redis returns. The switch to the fallback and back is logged once each way.

``endpoints.yml``: ``lock_store: {type: app.channels.lock_store.AtomicRedisLockStore, url: host, port: 6379,
db: 1, key_prefix: ...}`` (``app/scaleout.py`` writes it). Python 3.10 env: imports Rasa and redis only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any

import structlog
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, InMemoryLockStore, LockError, RedisLockStore
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = structlog.get_logger(__name__)

REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)  # Redis unreachable, not a bug of ours

MUTEX_TIMEOUT_S = 10.0  # a crashed holder frees the mutex after this
MUTEX_WAIT_S = 10.0  # how long an update waits for the mutex before the turn fails with LockError


class AtomicRedisLockStore(RedisLockStore):
    """``RedisLockStore`` with atomic ticket updates (see the module docstring)."""

    def __init__(self, endpoint_config: Any = None, **kwargs: Any) -> None:
        if endpoint_config is not None:  # created by Rasa from endpoints.yml (a custom lock store type)
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs, **kwargs}
        super().__init__(**kwargs)
        self._fallback = InMemoryLockStore()  # this replica's own locks while Redis is unreachable
        self._redis_down = False

    @asynccontextmanager
    async def lock(
        self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME, wait_time_in_seconds: float = 1
    ) -> AsyncIterator[TicketLock]:
        """Rasa's ticket lock, in Redis; in this process while Redis is unreachable (module docstring)."""
        try:
            ticket = self.issue_ticket(conversation_id, lock_lifetime)
        except REDIS_DOWN as exc:
            self._note_redis(down=exc)
            ticket = None
        if ticket is None:
            async with self._fallback.lock(conversation_id, lock_lifetime, wait_time_in_seconds) as lock:
                yield lock
            return
        self._note_redis(down=None)
        try:
            yield await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds)
        finally:
            try:
                self.cleanup(conversation_id, ticket)
            except REDIS_DOWN as exc:  # the ticket expires by itself after its lifetime
                self._note_redis(down=exc)

    def _note_redis(self, down: Exception | None) -> None:
        """Log when Redis becomes unreachable and when it is back (once each, not per turn)."""
        if down is not None and not self._redis_down:
            logger.error("lock_store.redis_unavailable", error=str(down)[:200], fallback="in-process lock")
        elif down is None and self._redis_down:
            logger.warning("lock_store.redis_back")
        self._redis_down = down is not None

    @contextmanager
    def _mutex(self, conversation_id: str) -> Iterator[None]:
        mutex = self.red.lock(
            f"{self.key_prefix}{conversation_id}:mutex",
            timeout=MUTEX_TIMEOUT_S,
            sleep=0.005,
            blocking_timeout=MUTEX_WAIT_S,
        )
        if not mutex.acquire():
            raise LockError(f"Could not update the lock of conversation '{conversation_id}' in time.")
        try:
            yield
        finally:
            with suppress(
                Exception
            ):  # expired meanwhile: someone else may hold it now; nothing of ours to free
                mutex.release()

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        with self._mutex(conversation_id):
            return super().issue_ticket(conversation_id, lock_lifetime)

    def update_lock(self, conversation_id: str) -> None:
        with self._mutex(conversation_id):
            super().update_lock(conversation_id)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        with self._mutex(conversation_id):  # finish serving, then delete the lock only if no one waits
            super().cleanup(conversation_id, ticket_number)
