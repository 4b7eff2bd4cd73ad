"""The action server process: serves rasa-sdk's webhook and logs JSON lines with correlation ids."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from tests.conftest import ROOT, free_port, guarded_env
from tests.openapi_contract import Contract

CALL = {
    "next_action": "action_track_order",
    "sender_id": "acme:t",
    "tracker": {
        "sender_id": "acme:t",
        "slots": {},
        "events": [],
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
        "latest_message": {
            "text": "where is ORD-10042",
            "entities": [],
            "metadata": {"tenant_id": "acme", "user_id": "t", "correlation_id": "c-42"},
        },
    },
    "domain": {},
    "version": "3.6.21",
}


@dataclass
class Served:
    """A started action server: its base URL, process and log file (stdout and stderr)."""

    url: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> str:
        """Stop it (SIGTERM) and return everything it logged."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        return self.log.read_text()


@contextmanager
def action_server(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """``python -m app.actions.server [args]`` on a free port, healthy, stopped when the block ends. No CRM
    answers (``SWITCHBOARD_CRM_PORT`` is a free port) and no knowledge index is loaded unless ``env`` says
    otherwise."""
    port = free_port()
    defaults = {
        "SWITCHBOARD_STATE_DIR": str(tmp_path),
        "SWITCHBOARD_CRM_PORT": str(free_port()),
        "SWITCHBOARD_INDEX_DIR": str(tmp_path / "no-index"),
    }
    env = guarded_env({**defaults, **(env or {})})
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / f"actions-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.actions.server", "--port", str(port), *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    served = Served(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{served.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError(f"the action server did not become healthy:\n{log.read_text()[-3000:]}")
        yield served
    finally:
        served.stop()


def test_action_server_answers_and_logs_json_with_the_correlation_id(tmp_path):
    with action_server(tmp_path) as served:
        url = served.url
        reply = httpx.post(f"{url}/webhook", json=CALL, timeout=30)
        assert reply.status_code == 200
        assert "can't reach our order system" in reply.json()["responses"][0]["text"]  # no CRM running
        scrape = httpx.get(f"{url}/metrics", timeout=10)
        assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
        lines = scrape.text.splitlines()
        assert 'switchboard_action_seconds_count{action="action_track_order",outcome="ok"} 1.0' in lines
        assert 'switchboard_tool_calls_total{outcome="unavailable",tool="order_status"} 1.0' in lines
        assert 'switchboard_breaker_state{breaker="crm"} 0.0' in lines
        output = served.stop()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert records and all("event" in r and "timestamp" in r for r in records)
    (crm,) = [r for r in records if r["event"] == "crm.unavailable"]
    assert crm["correlation_id"] == "c-42" and crm["tenant_id"] == "acme"


def with_tracker(**changes: object) -> dict:
    return {**CALL, "tracker": {**CALL["tracker"], **changes}}


HOSTILE_CALLS = {
    "array": b"[]",
    "null": b"null",
    "not-json": b"{nope",
    "nested-too-deep": b'{"next_action": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "no-tracker": json.dumps({"next_action": "action_answer_knowledge"}).encode(),
    "no-action": json.dumps({**CALL, "next_action": ""}).encode(),
    "sender-not-text": json.dumps(with_tracker(sender_id=5)).encode(),
    "no-latest-message": json.dumps(with_tracker(latest_message=None)).encode(),
    "metadata-not-object": json.dumps(with_tracker(latest_message={"metadata": "x"})).encode(),
    "bad-tenant": json.dumps(with_tracker(latest_message={"metadata": {"tenant_id": "A B"}})).encode(),
    "slot-of-wrong-type": json.dumps(with_tracker(slots={"order_id": 5})).encode(),
    "event-not-object": json.dumps(with_tracker(events=[1])).encode(),
    "version-not-text": json.dumps({**CALL, "version": 5}).encode(),
    "unknown-action": json.dumps({**CALL, "next_action": "action_nope"}).encode(),
}


def test_hostile_calls_and_unknown_routes_get_declared_4xx_never_a_500(tmp_path):
    """rasa_sdk answered each of these with a 500 (an unknown URL too): now a 4xx of the description."""
    description = yaml.safe_load((ROOT / "app" / "actions" / "openapi.yaml").read_text())
    contract = Contract(description)
    assert contract.schema_errors() == []
    with action_server(tmp_path) as served:
        url = served.url
        assert httpx.get(f"{url}/openapi.json", timeout=10).json() == description
        for name, body in HOSTILE_CALLS.items():
            reply = httpx.post(
                f"{url}/webhook", content=body, headers={"content-type": "application/json"}, timeout=30
            )
            assert 400 <= reply.status_code < 500, (name, reply.text)
            contract.check(reply)
            assert "request_body" not in reply.json()
        for method, path, status in [
            ("GET", "/nope", 404),
            ("GET", "/webhook", 405),
            ("POST", "/health", 405),
        ]:
            reply = httpx.request(method, f"{url}{path}", timeout=10)
            assert reply.status_code == status and reply.json()["error"], reply.text
        replies = [httpx.get(f"{url}{path}", timeout=10) for path in ("/health", "/actions")]
        replies.append(httpx.post(f"{url}/webhook", json=CALL, timeout=30))
        for reply in replies:
            assert reply.status_code == 200
            contract.check(reply)
