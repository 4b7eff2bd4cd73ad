"""Rasa's event broker (RabbitMQ): the endpoints name it only when it answers, and the recorder consumes it."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from app.analytics.recorder import BrokerConsumer, create_app
from app.analytics.turn_records import TurnRecorder, load_records
from app.data.db import upgrade
from app.scaleout import ScaleOutError, endpoints_config
from app.settings import Settings
from tests.app.analytics.tracker import Conversation, write_tracker
from tests.conftest import free_port

RABBITMQ = os.environ.get("SWITCHBOARD_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def rabbitmq() -> str:
    """The machine's RabbitMQ; skipped without it, a failure under CI=true."""
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ)).close()
    except Exception as exc:  # noqa: BLE001 - any connection failure means "not here"
        if os.environ.get("CI") == "true":
            pytest.fail(f"RabbitMQ is required under CI but not reachable at {RABBITMQ}: {exc}")
        pytest.skip(f"RabbitMQ not reachable at {RABBITMQ}")
    return RABBITMQ


def test_the_endpoints_name_the_broker_only_when_it_answers(rabbitmq, tmp_path):
    settings = Settings(
        state_dir=tmp_path, event_broker_url="amqp://guest:guest@127.0.0.1:5672/", event_broker_queue="q1"
    )
    broker = endpoints_config(settings)["event_broker"]
    assert broker == {"type": "pika", "url": "127.0.0.1", "port": 5672, "username": "guest", "password": "guest",
                      "queues": ["q1"]}  # fmt: skip
    silent = settings.model_copy(update={"event_broker_url": f"amqp://guest:guest@127.0.0.1:{free_port()}/"})
    assert "event_broker" not in endpoints_config(silent)  # the bot starts without it (Rasa would refuse to)
    assert "event_broker" not in endpoints_config(settings.model_copy(update={"event_broker_url": ""}))
    with pytest.raises(ScaleOutError, match="amqp://"):
        endpoints_config(settings.model_copy(update={"event_broker_url": "redis://127.0.0.1:6379"}))


def test_the_recorder_records_the_senders_the_broker_names(rabbitmq, tmp_path):
    import pika

    queue = f"switchboard-test-{uuid.uuid4().hex[:8]}"
    tracker, store = tmp_path / "tracker.db", f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(store)
    now = time.time()
    conv = Conversation("acme:dana", now - 5)
    conv.user("hi", "greet", metadata={"correlation_id": "c1"}).action("utter_greet").bot("Hi").listen()
    write_tracker(tracker, conv)
    consumer = BrokerConsumer(rabbitmq, queue).start()
    try:
        recorder = TurnRecorder(f"sqlite:///{tracker}", store)
        with TestClient(
            create_app(recorder, interval_s=None, broker=consumer)
        ) as client:  # no polling at all
            deadline = time.monotonic() + 15
            while not consumer.connected and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.get("/health").json()["event_broker_connected"] is True
            connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
            channel = connection.channel()
            for row in conv.rows:  # what Rasa publishes: each event as JSON, with its sender id
                channel.basic_publish(
                    "", queue, json.dumps({**json.loads(row["data"]), "sender_id": "acme:dana"})
                )
            connection.close()
            while not load_records(store) and time.monotonic() < deadline:
                time.sleep(0.1)
        assert [r["handler"] for r in load_records(store)] == ["chitchat"]
    finally:
        consumer.stop()
        cleanup = pika.BlockingConnection(pika.URLParameters(rabbitmq))
        cleanup.channel().queue_delete(queue)
        cleanup.close()
