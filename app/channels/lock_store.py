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

``endpoints.yml``: ``lock_store: {type: app.channels.lock_store.AtomicRedisLockStore, url: host, port: 6379,
db: 1, key_prefix: ...}`` (``app/scaleout.py`` writes it). Python 3.10 env: imports Rasa and redis only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore

MUTEX_TIMEOUT_S = 10.0  # a crashed holder frees the mutex after this
MUTEX_WAIT_S = 10.0  # how long an update waits for the mutex before the turn fails with LockError


class AtomicRedisLockStore(RedisLockStore):
    """``RedisLockStore`` with atomic ticket updates (see the module docstring)."""

    def __init__(self, endpoint_config: Any = None, **kwargs: Any) -> None:
        if endpoint_config is not None:  # created by Rasa from endpoints.yml (a custom lock store type)
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs, **kwargs}
        super().__init__(**kwargs)

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
