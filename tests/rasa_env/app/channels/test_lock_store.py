"""The atomic Redis lock store against a real Redis: replicas taking turns of one conversation at once.

Every "replica" is its own lock-store instance (its own connection), as separate Rasa processes would be.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid

import pytest
import redis

from app.channels.lock_store import AtomicRedisLockStore

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def prefix() -> str:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is required under CI but not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def store(cls, prefix: str):
    parts = redis.connection.parse_url(REDIS_URL)
    return cls(host=parts["host"], port=parts["port"], db=parts["db"], key_prefix=prefix)


def issue_at_once(cls, prefix: str, replicas: int = 8) -> tuple[list[int], list[int]]:
    """Each replica issues one ticket for the same conversation at the same moment: the tickets they got,
    and the tickets the shared lock holds afterwards."""
    stores = [store(cls, prefix) for _ in range(replicas)]
    start = threading.Barrier(replicas)
    issued: list[int] = []

    def replica(lock_store) -> None:
        start.wait()
        issued.append(lock_store.issue_ticket("acme:alice"))

    threads = [threading.Thread(target=replica, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = [t.number for t in stores[0].get_lock("acme:alice").tickets]
    return sorted(issued), sorted(held)


def test_tickets_issued_at_the_same_moment_are_all_distinct_and_all_kept(prefix):
    for _ in range(5):
        issued, held = issue_at_once(AtomicRedisLockStore, prefix)
        assert issued == held == list(range(issued[0], issued[0] + 8))
        store(AtomicRedisLockStore, prefix).delete_lock("acme:alice")


def test_turns_through_the_lock_never_overlap(prefix):
    """Six turns of one conversation on three replicas: the critical sections never run at the same time."""
    stores = [store(AtomicRedisLockStore, prefix) for _ in range(3)]
    inside, overlaps, done = 0, 0, []

    async def turn(lock_store, n: int) -> None:
        nonlocal inside, overlaps
        async with lock_store.lock("acme:alice", wait_time_in_seconds=0.01):
            inside += 1
            overlaps += inside > 1
            await asyncio.sleep(0.02)
            done.append(n)
            inside -= 1

    async def main() -> None:
        await asyncio.gather(*(turn(stores[n % 3], n) for n in range(6)))

    asyncio.run(main())
    assert sorted(done) == list(range(6)) and overlaps == 0
    assert store(AtomicRedisLockStore, prefix).get_lock("acme:alice") is None  # released and cleaned up


def test_rasa_builds_it_from_an_endpoints_config(prefix):
    from rasa.core.lock_store import LockStore
    from rasa.utils.endpoints import EndpointConfig

    parts = redis.connection.parse_url(REDIS_URL)
    config = EndpointConfig(
        type="app.channels.lock_store.AtomicRedisLockStore",
        url=parts["host"],
        port=parts["port"],
        db=parts["db"],
        key_prefix=prefix,
    )
    lock_store = LockStore.create(config)
    assert isinstance(lock_store, AtomicRedisLockStore) and lock_store.key_prefix == f"{prefix}:lock:"
