"""The atomic Redis lock store against a real Redis: replicas taking turns of one conversation at once, and
turns that keep running (on this replica's own lock) while Redis is stopped.

Every "replica" is its own lock-store instance (its own connection), as separate Rasa processes would be.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
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
    done, overlaps = turns_of_one_conversation(stores, 6)
    assert sorted(done) == list(range(6)) and overlaps == 0
    assert store(AtomicRedisLockStore, prefix).get_lock("acme:alice") is None  # released and cleaned up


def turns_of_one_conversation(stores: list[AtomicRedisLockStore], count: int) -> tuple[list[int], int]:
    """``count`` turns of one conversation at once, turn ``n`` through ``stores[n % len(stores)]`` (a replica
    each): the order they finished in, and how often two were inside at the same time."""
    inside, overlaps, done = 0, 0, []

    async def turn(n: int) -> None:
        nonlocal inside, overlaps
        async with stores[n % len(stores)].lock("acme:alice", wait_time_in_seconds=0.01):
            inside += 1
            overlaps += inside > 1
            await asyncio.sleep(0.02)
            done.append(n)
            inside -= 1

    async def main() -> None:
        await asyncio.gather(*(turn(n) for n in range(count)))

    asyncio.run(main())
    return done, overlaps


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


# --- Redis unreachable: this replica's own lock, then Redis again -------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A redis-server of this test's own on a free port (never the machine's shared one), stopped and
    started again at will; nothing persisted."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture
def own_redis():
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required under CI")
        pytest.skip("no redis-server binary")
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


def test_without_redis_turns_still_run_one_at_a_time_in_this_process():
    lock_store = AtomicRedisLockStore(host="127.0.0.1", port=free_port(), db=0, key_prefix="down")
    done, overlaps = turns_of_one_conversation([lock_store], 4)
    assert sorted(done) == [0, 1, 2, 3] and overlaps == 0


def test_redis_stopped_then_started_again(own_redis):
    lock_store = AtomicRedisLockStore(host="127.0.0.1", port=own_redis.port, db=0, key_prefix="t")
    client = redis.Redis(port=own_redis.port)
    seen_in_redis = []

    async def one_turn() -> None:
        async with lock_store.lock("acme:alice", wait_time_in_seconds=0.01):
            try:
                seen_in_redis.append(client.exists("t:lock:acme:alice") == 1)
            except redis.exceptions.ConnectionError:
                seen_in_redis.append(False)

    asyncio.run(one_turn())
    own_redis.stop()
    asyncio.run(one_turn())  # Redis is down: the turn runs under this process's lock
    assert lock_store._redis_down
    own_redis.start()
    asyncio.run(one_turn())  # back in Redis
    assert seen_in_redis == [True, False, True] and not lock_store._redis_down
    assert client.exists("t:lock:acme:alice") == 0  # released
