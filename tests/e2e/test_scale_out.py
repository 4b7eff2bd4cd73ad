"""End to end, scale-out mode: two Rasa replicas sharing a PostgreSQL tracker store and a Redis lock store.

One Stack (the launcher's own class) starts the CRM service, the action server and two Rasa replicas on a
fresh PostgreSQL database (tracker store and our stores alike) and a Redis lock store under a key prefix of
this run. Turns of one conversation alternate between the replicas, and the second turn only makes sense
with the first one's state; concurrent turns of one conversation on both replicas are serialised.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import yaml

from app.data.db import get_engine
from app.integrations.jobs import JobStore
from tests.app.data.conftest import POSTGRES_SERVER
from tests.conftest import PipelineRun, seed_order, start_guarded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REDIS_SERVER = os.environ.get("SWITCHBOARD_TEST_REDIS", "redis://127.0.0.1:6379/15")
WEBHOOK = "/webhooks/rest/webhook"


def unavailable(what: str, detail: object) -> None:
    """Skip without the service; under CI the service is required, so fail instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required under CI but not reachable: {detail}")
    pytest.skip(f"{what} not reachable: {detail}")


@pytest.fixture(scope="session")
def stores_reachable() -> None:
    """PostgreSQL and Redis answer (else skip, or fail under CI). Session-scoped so that it runs before the
    session's pipeline fixture: no pipeline run just to skip."""
    import redis

    admin = sa.create_engine(POSTGRES_SERVER)
    try:
        with admin.connect():
            pass
    except sa.exc.OperationalError as exc:
        unavailable(f"PostgreSQL at {POSTGRES_SERVER}", str(exc).splitlines()[0])
    finally:
        admin.dispose()
    client = redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        unavailable(f"Redis at {REDIS_SERVER}", exc)
    finally:
        client.close()


@pytest.fixture(scope="module")
def postgres_db(stores_reachable: None) -> Iterator[str]:
    """A uniquely named PostgreSQL database for this module, dropped at the end."""
    admin = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    name = f"switchboard_scaleout_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def lock_prefix(stores_reachable: None) -> Iterator[str]:
    """An alphanumeric lock-store key prefix of this run (Rasa's rule); its keys are deleted at the end."""
    import redis

    prefix = f"sbtest{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=2, socket_timeout=5)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


@dataclass
class Scaled:
    stack: object
    a: str  # replica A's base URL
    b: str  # replica B's base URL
    db_url: str


@pytest.fixture(scope="module")
def scaled(
    stores_reachable: None,
    pipeline_run: PipelineRun,
    postgres_db: str,
    lock_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scaled]:
    from app.scaleout import free_ports
    from app.settings import Settings
    from app.stack import Stack

    state = tmp_path_factory.mktemp("scaleout")
    settings = Settings(
        **free_ports("127.0.0.1", ("rasa_port", "action_port", "streamlit_port", "crm_port")),
        state_dir=state,
        tracker_store_db="",
        model_path=pipeline_run.root / "nlu" / "serving" / "model.tar.gz",
        index_dir=pipeline_run.root / "knowledge" / "index",
        database_url=postgres_db,
        tracker_store_url=postgres_db,
        lock_store_url=REDIS_SERVER,
        lock_store_key_prefix=lock_prefix,
        rasa_replicas=2,
    )
    stack = Stack(settings, services=("crm", "actions", "rasa"))
    start_guarded(stack, timeout=420)  # both replicas load the model at once on a small machine: be generous
    try:
        a, b = stack.rasa_urls
        yield Scaled(stack, a, b, postgres_db)
    finally:
        stack.stop()


def say(base_url: str, sender: str, text: str, timeout: float = 120) -> list[dict]:
    from app.settings import Settings

    headers = Settings().channel_headers  # the channel secret the stack's Settings() found, if any
    reply = httpx.post(
        f"{base_url}{WEBHOOK}", json={"sender": sender, "message": text}, headers=headers, timeout=timeout
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def texts(messages: list[dict]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def tracker_events(db_url: str, conversation_id: str) -> list[dict]:
    """The conversation's events as the replicas stored them in PostgreSQL, in insertion order."""
    with get_engine(db_url).connect() as conn:
        rows = (
            conn.execute(
                sa.text("SELECT data FROM events WHERE sender_id = :id ORDER BY id"), {"id": conversation_id}
            )
            .scalars()
            .all()
        )
    return [json.loads(row) for row in rows]


def user_texts(events: list[dict]) -> list[str]:
    return [e["text"] for e in events if e["event"] == "user"]


class LockWatcher:
    """Polls Redis for one conversation's ticket lock while turns run: proof that the replicas lock there
    (Rasa's key is ``<prefix>:lock:<conversation id>``), not in their own memory."""

    def __init__(self, key: str) -> None:
        import redis

        self.key, self.seen = key, False
        self.client = redis.Redis.from_url(REDIS_SERVER, socket_timeout=5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            if self.client.exists(self.key):
                self.seen = True
            time.sleep(0.002)

    def client_keys(self, pattern: str) -> list[bytes]:
        return list(self.client.scan_iter(match=pattern, count=500))

    def __enter__(self) -> LockWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def test_two_replicas_on_the_shared_stores(scaled):
    """Two distinct replicas, both answering, both configured with PostgreSQL and Redis (not SQLite)."""
    assert len({scaled.a, scaled.b}) == 2
    for url in (scaled.a, scaled.b):
        assert httpx.get(f"{url}/", timeout=10).text.startswith("Hello from Rasa")
    endpoints = yaml.safe_load((scaled.stack.settings.state_dir / "endpoints.yml").read_text())
    pg = urlsplit(scaled.db_url)
    assert endpoints["tracker_store"]["dialect"] == "postgresql"
    assert endpoints["tracker_store"]["db"] == pg.path.lstrip("/")
    assert endpoints["lock_store"]["type"] == "app.channels.lock_store.AtomicRedisLockStore"
    assert endpoints["lock_store"]["key_prefix"] == scaled.stack.settings.lock_store_key_prefix
    assert not (scaled.stack.settings.state_dir / "tracker.db").exists()


def test_order_question_on_a_answered_on_b(scaled, user):
    order = seed_order(scaled.stack, user, status="out_for_delivery", carrier="PostNL")
    assert "order number" in texts(say(scaled.a, user, "I want to track my order"))
    assert "out for delivery" in texts(say(scaled.b, user, order))  # from the CRM rows in PostgreSQL

    events = tracker_events(scaled.db_url, f"acme:{user}")
    assert user_texts(events) == ["I want to track my order", order]
    slots = [(e["name"], e["value"]) for e in events if e["event"] == "slot"]
    assert ("order_id", order) in slots
    with get_engine(scaled.db_url).connect() as conn:  # the answer came from our stores on PostgreSQL
        status = conn.execute(
            sa.text("SELECT status FROM crm_orders WHERE tenant_id = 'acme' AND order_id = :id"),
            {"id": order},
        ).scalar()
    assert status == "out_for_delivery"


def test_refund_slot_set_on_a_is_used_on_b(scaled):
    """The bare order id means "refund this one" only because replica A set ``refund_requested``: without
    the shared tracker, replica B would answer with the order's status instead."""
    assert "Which order" in texts(say(scaled.a, "alice", "I want a refund"))
    reply = texts(say(scaled.b, "alice", "ORD-10043"))
    assert "Refund requested for order ORD-10043" in reply

    (job,) = JobStore(get_engine(scaled.db_url)).for_user("acme", "alice", "refund")
    assert f"R-{job['id']}" in reply
    events = tracker_events(scaled.db_url, "acme:alice")
    assert user_texts(events) == ["I want a refund", "ORD-10043"]
    flags = [e["value"] for e in events if e["event"] == "slot" and e["name"] == "refund_requested"]
    assert flags == [True, False]


def test_concurrent_turns_of_one_conversation_are_serialised(scaled, user):
    """Six turns of one conversation sent at once, alternating replicas: all answered, and the tracker holds
    each turn once, whole and in order (the Redis lock store lets one replica at a time handle it)."""
    conversation = f"acme:{user}"
    say(scaled.a, user, "hello")
    messages = ["hi there", "good morning", "hey", "thanks", "thank you", "hello again"]
    targets = [scaled.a if i % 2 == 0 else scaled.b for i in range(len(messages))]
    prefix = scaled.stack.settings.lock_store_key_prefix
    with LockWatcher(f"{prefix}:lock:{conversation}") as watcher, ThreadPoolExecutor(len(messages)) as pool:
        replies = list(
            pool.map(lambda pair: say(pair[0], user, pair[1]), zip(targets, messages, strict=True))
        )
    assert watcher.seen, "no ticket lock of this conversation ever appeared in Redis"
    assert all(texts(reply).strip() for reply in replies), replies

    events = tracker_events(scaled.db_url, conversation)
    said = user_texts(events)
    assert said[0] == "hello" and sorted(said[1:]) == sorted(messages)  # each turn exactly once
    # Whole turns, one after the other: every user message is followed by the bot's answer and an
    # action_listen before the next user message starts (interleaved turns would break this).
    turns: list[list[dict]] = []
    for event in events:
        if event["event"] == "user":
            turns.append([event])
        elif turns:
            turns[-1].append(event)
    assert len(turns) == len(messages) + 1
    for turn in turns:
        actions = [e["name"] for e in turn if e["event"] == "action"]
        assert actions and actions[-1] == "action_listen", turn
        assert any(e["event"] == "bot" for e in turn), turn
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)  # stored in the order they happened
    assert not watcher.client_keys(f"{prefix}:*")  # every ticket lock was released afterwards
    watcher.client.close()
