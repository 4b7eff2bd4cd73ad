"""The action server process: serves rasa-sdk's webhook and logs JSON lines with correlation ids."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from tests.conftest import ROOT, free_port, guarded_env

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


def test_action_server_answers_and_logs_json_with_the_correlation_id(tmp_path):
    port = free_port()
    env = guarded_env({"SWITCHBOARD_STATE_DIR": str(tmp_path), "SWITCHBOARD_CRM_PORT": str(free_port())})
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.actions.server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        reply = httpx.post(f"http://127.0.0.1:{port}/webhook", json=CALL, timeout=30)
        assert reply.status_code == 200
        assert "can't reach our order system" in reply.json()["responses"][0]["text"]  # no CRM running
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
        lines = scrape.text.splitlines()
        assert 'switchboard_action_seconds_count{action="action_track_order",outcome="ok"} 1.0' in lines
        assert 'switchboard_tool_calls_total{outcome="unavailable",tool="order_status"} 1.0' in lines
        assert 'switchboard_breaker_state{breaker="crm"} 0.0' in lines
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert records and all("event" in r and "timestamp" in r for r in records)
    (crm,) = [r for r in records if r["event"] == "crm.unavailable"]
    assert crm["correlation_id"] == "c-42" and crm["tenant_id"] == "acme"
