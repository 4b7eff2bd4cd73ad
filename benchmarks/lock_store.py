"""Tickets lost when Rasa replicas take turns of one conversation at the same moment: Rasa's RedisLockStore
(the baseline) against ours (``app/channels/lock_store.py``), same Redis, same run.

    .venv-rasa/bin/python benchmarks/lock_store.py [--trials 200] [--replicas 8]

Each trial: ``--replicas`` lock-store instances (separate connections, as separate Rasa processes) issue one
ticket each for the same conversation behind a barrier; a ticket missing from the shared lock afterwards is
a turn that would run at the same time as another one (and lose tracker events). Runs in the Rasa env.
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
from rasa.core.lock_store import RedisLockStore  # noqa: E402

from app.channels.lock_store import AtomicRedisLockStore  # noqa: E402


def trial(cls, url: str, prefix: str, replicas: int) -> int:
    parts = redis.connection.parse_url(url)
    stores = [
        cls(host=parts["host"], port=parts["port"], db=parts["db"], key_prefix=prefix)
        for _ in range(replicas)
    ]
    barrier = threading.Barrier(replicas)
    issued: list[int] = []

    def replica(lock_store) -> None:
        barrier.wait()
        issued.append(lock_store.issue_ticket("bench:conversation"))

    threads = [threading.Thread(target=replica, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lock = stores[0].get_lock("bench:conversation")
    held = {t.number for t in lock.tickets} if lock else set()
    stores[0].delete_lock("bench:conversation")
    return replicas - len(held & set(issued))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=8)
    args = parser.parse_args()
    if not args.url.startswith(("redis://127.", "redis://localhost")):
        print("error: loopback Redis only", file=sys.stderr)
        return 2
    try:
        redis.Redis.from_url(args.url, socket_connect_timeout=2).ping()
    except redis.exceptions.RedisError as exc:
        print(f"error: Redis not reachable at {args.url}: {exc}", file=sys.stderr)
        return 2
    print(f"{args.trials} trials x {args.replicas} replicas issuing a ticket at the same moment")
    print(f"{'lock store':<24}{'tickets lost':>14}{'of':>8}{'trials with a loss':>22}")
    for cls in (RedisLockStore, AtomicRedisLockStore):
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        losses = [trial(cls, args.url, prefix, args.replicas) for _ in range(args.trials)]
        print(
            f"{cls.__name__:<24}{sum(losses):>14}{args.trials * args.replicas:>8}"
            f"{sum(1 for n in losses if n):>22}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
