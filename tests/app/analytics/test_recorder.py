"""The recorder service: syncs on its own, on demand, and says so when a store is down."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from app.analytics.recorder import create_app
from app.analytics.turn_records import TurnRecorder, load_records
from app.data.db import upgrade
from tests.app.analytics.tracker import Conversation, write_tracker

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()


def test_sync_on_demand_and_health(tmp_path):
    tracker, store = tmp_path / "tracker.db", f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(store)
    recorder = TurnRecorder(f"sqlite:///{tracker}", store)
    with TestClient(create_app(recorder, interval_s=None)) as client:
        conv = Conversation("acme:dana", T0)
        conv.user("hi", "greet", metadata={"correlation_id": "c1"}).action("utter_greet").bot("Hi").listen()
        write_tracker(tracker, conv)
        reply = client.post("/sync")
        assert reply.status_code == 200 and reply.json()["senders"] == 1
        assert client.get("/health").json()["status"] == "ok"
        assert "/sync" in client.get("/openapi.json").json()["paths"]
    assert [r["handler"] for r in load_records(store)] == ["chitchat"]


def test_a_store_that_is_down_is_a_503_not_a_crash(tmp_path):
    recorder = TurnRecorder(f"sqlite:///{tmp_path / 'tracker.db'}", f"sqlite:///{tmp_path / 'no-tables.db'}")
    with TestClient(create_app(recorder, interval_s=None)) as client:
        write_tracker(tmp_path / "tracker.db", Conversation("acme:x", T0).user("hi", "greet").listen())
        reply = client.post("/sync")
        assert reply.status_code == 503 and reply.json()["error"] == "sync_failed"
        assert client.get("/health").json()["last_error"]


def test_the_loop_syncs_on_its_own(tmp_path):
    import time

    tracker, store = tmp_path / "tracker.db", f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(store)
    write_tracker(
        tracker, Conversation("acme:dana", T0).user("bye", "goodbye").action("utter_goodbye").bot("Bye")
    )
    with TestClient(create_app(TurnRecorder(f"sqlite:///{tracker}", store), interval_s=0.05)):
        deadline = time.monotonic() + 10
        while not load_records(store) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert [r["handler"] for r in load_records(store)] == ["chitchat"]
