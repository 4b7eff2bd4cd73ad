"""Rasa publishes its events to RabbitMQ and the turn recorder records the turns from them, without polling."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from app.analytics.turn_records import load_records
from tests.app.analytics.test_event_broker import rabbitmq  # noqa: F401 - fixture
from tests.conftest import free_port, start_guarded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_turn_records_arrive_through_the_event_broker(pipeline_run, rabbitmq, tmp_path):  # noqa: F811
    import pika

    from app.settings import Settings
    from app.stack import Stack

    queue = f"switchboard-e2e-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        rasa_port=free_port(), action_port=free_port(), recorder_port=free_port(), state_dir=tmp_path,
        model_path=pipeline_run.root / "nlu" / "serving" / "model.tar.gz",
        index_dir=pipeline_run.root / "knowledge" / "index",
        event_broker_url="amqp://guest:guest@127.0.0.1:5672/", event_broker_queue=queue,
    )  # fmt: skip
    stack = Stack(settings, services=("crm", "actions", "rasa", "recorder"))
    assert stack.event_broker
    start_guarded(stack, timeout=240)
    try:
        started = time.monotonic()
        reply = httpx.post(f"{stack.settings.rasa_url}/webhooks/rest/webhook",
                           json={"sender": "brokered", "message": "hello"}, headers={"X-Request-Id": "b-1"},
                           timeout=60)  # fmt: skip
        assert reply.status_code == 200 and reply.json()
        records = []
        while not records and time.monotonic() - started < 20:  # the recorder polls only every 30 s here
            records = load_records(stack.settings.db_url, conversation_ids=["acme:brokered"])
            time.sleep(0.2)
        assert [(r["correlation_id"], r["handler"]) for r in records] == [("b-1", "chitchat")]
        health = httpx.get(f"http://127.0.0.1:{stack.settings.recorder_port}/health", timeout=5).json()
        assert health["event_broker_connected"] is True
    finally:
        stack.stop()
        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
        connection.channel().queue_delete(queue)
        connection.close()
