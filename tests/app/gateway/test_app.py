"""The gateway app end to end in-process (FastAPI TestClient) in front of a fake upstream (MockTransport):
forwarding, auth failures, body checks, plan limits, failover and upstream failures."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from app.gateway.app import create_app
from app.gateway.config import gateway_params
from app.settings import Settings
from tests.app.gateway.conftest import SECRET, UPSTREAM, WEBHOOK, auth, make_config, make_token, turn

# --- forwarding -----------------------------------------------------------------------------------------


def test_valid_token_is_forwarded_with_the_tokens_tenant_and_the_request_id(gateway, upstream):
    client = gateway()
    headers = {**auth(tenant="acme", sub="alice"), "X-Tenant-Id": "globex", "X-Request-Id": "req-123"}
    body = {"sender": "alice", "message": "hello", "metadata": {"page": "chat"}}

    reply = client.post(WEBHOOK, json=body, headers=headers)

    assert reply.status_code == 200, reply.text
    assert reply.json() == [{"recipient_id": "acme:alice", "text": f"hello from {UPSTREAM}"}]
    assert reply.headers["X-Request-Id"] == "req-123"
    (seen,) = upstream.posts()
    assert seen.url == f"{UPSTREAM}{WEBHOOK}"
    assert seen.headers["X-Tenant-Id"] == "acme"  # the token's tenant, not the forged header
    assert seen.headers["X-Request-Id"] == "req-123"
    assert "authorization" not in seen.headers  # the token stays at the gateway
    # the body reaches Rasa unchanged but for the model variant that serves the turn (for the turn records)
    assert json.loads(seen.content) == {**body, "metadata": {"page": "chat", "model_variant": "champion"}}


def test_a_request_id_is_generated_when_absent_or_unsafe(gateway, upstream):
    client = gateway()
    generated = turn(client, headers=auth())
    unsafe = turn(client, headers={**auth(), "X-Request-Id": "bad id\nforged log line"})

    for reply, seen in zip((generated, unsafe), upstream.posts(), strict=True):
        assert reply.status_code == 200
        request_id = reply.headers["X-Request-Id"]
        assert len(request_id) == 32 and int(request_id, 16) >= 0
        assert seen.headers["X-Request-Id"] == request_id
    assert generated.headers["X-Request-Id"] != unsafe.headers["X-Request-Id"]


def test_rate_limit_headers_count_down(gateway):
    client = gateway(make_config(plans={"pro": "5/minute"}))
    remaining = [int(turn(client, headers=auth()).headers["X-RateLimit-Remaining"]) for _ in range(3)]
    reply = turn(client, headers=auth())
    assert remaining == [4, 3, 2]
    assert reply.headers["X-RateLimit-Limit"] == "5"
    assert 0 < int(reply.headers["X-RateLimit-Reset"]) - time.time() <= 61


# --- auth -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_token"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, 401, "malformed_token"),
        ({"Authorization": "Bearer not.a.jwt"}, 401, "malformed_token"),
        ({"Authorization": "Bearer " + make_token(exp=int(time.time()) - 60)}, 401, "token_expired"),
        (
            {"Authorization": "Bearer " + make_token(secret="another-secret-of-40-bytes-0123456789ab")},
            401,
            "invalid_signature",
        ),
        ({"Authorization": "Bearer " + make_token(drop=("tenant",))}, 401, "missing_claim"),
        ({"Authorization": "Bearer " + make_token(drop=("exp",))}, 401, "missing_claim"),
        ({"Authorization": "Bearer " + make_token(tenant="ACME!")}, 401, "invalid_claim"),
        ({"Authorization": "Bearer " + make_token(plan="platinum")}, 403, "unknown_plan"),
        ({"Authorization": "Bearer " + make_token(sub="mallory")}, 403, "sender_mismatch"),
    ],
    ids=[
        "missing",
        "basic",
        "garbage",
        "expired",
        "bad-signature",
        "no-tenant",
        "no-exp",
        "bad-tenant",
        "unknown-plan",
        "sender-mismatch",
    ],
)
def test_auth_failures_never_reach_the_upstream(gateway, upstream, headers, status, code):
    client = gateway()
    reply = turn(client, sender="alice", headers={**headers, "X-Request-Id": "r-1"})

    assert reply.status_code == status
    assert reply.json()["error"] == code and reply.json()["message"]
    assert reply.headers["X-Request-Id"] == "r-1"
    if status == 401:
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert upstream.posts() == []


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"[1, 2]", 400, "invalid_body"),
        (json.dumps({"message": "hi"}).encode(), 400, "invalid_sender"),
        (json.dumps({"sender": "alice", "message": "  "}).encode(), 400, "invalid_message"),
        (json.dumps({"sender": "alice", "message": "x" * 101}).encode(), 413, "message_too_long"),
        # found by tests/e2e/test_fuzz.py: relayed with the metadata dropped, where the channel says 400
        (
            json.dumps({"sender": "alice", "message": "hi", "metadata": [None]}).encode(),
            400,
            "invalid_metadata",
        ),
        (json.dumps({"sender": "alice", "message": "hi", "metadata": 5}).encode(), 400, "invalid_metadata"),
        (json.dumps({"sender": "alice", "message": "hi", "metadata": []}).encode(), 400, "invalid_metadata"),
        (
            json.dumps({"sender": "alice", "message": "hi", "pad": "x" * 70_000}).encode(),
            413,
            "body_too_large",
        ),
    ],
)
def test_bad_bodies_get_the_channels_errors(gateway, upstream, content, status, code):
    reply = gateway().post(WEBHOOK, content=content, headers={**auth(), "Content-Type": "application/json"})
    assert (reply.status_code, reply.json()["error"]) == (status, code)
    assert upstream.posts() == []


# --- plan limits ----------------------------------------------------------------------------------------


def test_free_plan_gets_429_after_its_limit_pro_and_other_tenants_do_not(gateway, upstream):
    """With the plans of params.yaml: free's N turns pass, the next is refused with Retry-After; a pro
    user of the same tenant and a free user of another tenant go on."""
    params = gateway_params(Settings())
    n = int(params.plans["free"].split("/")[0])
    client = gateway(make_config(plans=params.plans, tenant_limit=params.tenant_limit))
    free = auth(sub="fay", plan="free")

    assert [turn(client, "fay", free).status_code for _ in range(n)] == [200] * n
    refused = turn(client, "fay", free)

    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["X-RateLimit-Limit"] == str(n)
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert len(upstream.posts()) == n  # the refused turn never reached Rasa

    pro = auth(sub="pat", plan="pro")
    assert [turn(client, "pat", pro).status_code for _ in range(n + 1)] == [200] * (n + 1)
    other_tenant = auth(sub="fay", tenant="globex", plan="free")
    assert turn(client, "fay", other_tenant).status_code == 200


def test_tenant_ceiling_caps_all_users_of_a_tenant_together(gateway):
    client = gateway(make_config(plans={"pro": "100/minute"}, tenant_limit="4/minute"))
    codes = [turn(client, user, auth(sub=user)).status_code for user in ("u1", "u2", "u3", "u4", "u5")]
    assert codes == [200, 200, 200, 200, 429]
    refused = turn(client, "u6", auth(sub="u6"))
    assert "tenant ceiling" in refused.json()["message"] and int(refused.headers["Retry-After"]) >= 1
    assert turn(client, "u1", auth(sub="u1", tenant="globex")).status_code == 200


# --- upstreams ------------------------------------------------------------------------------------------


def test_round_robin_over_healthy_upstreams(gateway, upstream):
    urls = ["http://rasa-1.test", "http://rasa-2.test"]
    client = gateway(make_config(upstreams=urls))
    texts = [turn(client, headers=auth()).json()[0]["text"] for _ in range(4)]
    assert texts == [f"hello from {u}" for u in urls + urls]


def test_connection_error_fails_over_to_the_next_upstream(gateway, upstream):
    urls = ["http://rasa-1.test", "http://rasa-2.test"]
    upstream.behaviour[urls[0]] = httpx.ConnectError("connection refused")
    client = gateway(make_config(upstreams=urls))
    replies = [turn(client, headers=auth()) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert {r.json()[0]["text"] for r in replies} == {f"hello from {urls[1]}"}
    assert len(upstream.posts()) == 3  # one delivery per turn: no duplicates


def test_no_reachable_upstream_is_503(gateway, upstream):
    urls = ["http://rasa-1.test", "http://rasa-2.test"]
    for url in urls:
        upstream.behaviour[url] = httpx.ConnectError("connection refused")
    reply = turn(gateway(make_config(upstreams=urls)), headers=auth())
    assert (reply.status_code, reply.json()["error"]) == (503, "upstream_unavailable")


def test_read_timeout_is_504_and_not_retried_elsewhere(gateway, upstream):
    urls = ["http://rasa-1.test", "http://rasa-2.test"]
    upstream.behaviour[urls[0]] = httpx.ReadTimeout("no answer")
    reply = turn(gateway(make_config(upstreams=urls)), headers=auth())
    assert (reply.status_code, reply.json()["error"]) == (504, "upstream_timeout")
    assert upstream.posts() == []  # the second upstream never saw it: the turn may have run on the first


@pytest.mark.parametrize(
    ("response", "status", "code"),
    [
        (httpx.Response(500, json={"error": "internal_error", "message": "boom"}), 502, "bad_upstream"),
        (httpx.Response(200, text="<html>proxy error</html>"), 502, "bad_upstream"),
        (httpx.Response(200, json={"not": "a list"}), 502, "bad_upstream"),
        (httpx.Response(504, json={"error": "timeout", "message": "slow"}), 504, "upstream_timeout"),
        (httpx.Response(413, json={"error": "message_too_long", "message": "long"}), 413, "message_too_long"),
    ],
)
def test_upstream_replies_are_mapped(gateway, upstream, response, status, code):
    upstream.behaviour[UPSTREAM] = lambda request: response
    reply = turn(gateway(), headers=auth())
    assert (reply.status_code, reply.json()["error"]) == (status, code)
    assert "Traceback" not in reply.text


def test_a_turn_the_tracker_store_refused_is_503_with_retry_after(gateway, upstream):
    """The channel did not run the turn (app/channels/degraded.py): the client is told to send it again."""
    upstream.behaviour[UPSTREAM] = lambda request: httpx.Response(
        503,
        json={"error": "store_unavailable", "message": "Please send it again."},
        headers={"Retry-After": "5"},
    )
    reply = turn(gateway(), headers=auth())
    assert (reply.status_code, reply.json()["error"], reply.headers["retry-after"]) == (
        503,
        "store_unavailable",
        "5",
    )
    # a 503 that is not the channel's refusal stays a failed upstream
    upstream.behaviour[UPSTREAM] = lambda request: httpx.Response(503, text="busy proxy")
    assert turn(gateway(), headers=auth()).json()["error"] == "bad_upstream"


def test_a_broken_connection_mid_answer_is_502(gateway, upstream):
    upstream.behaviour[UPSTREAM] = httpx.RemoteProtocolError("server disconnected")
    reply = turn(gateway(), headers=auth())
    assert (reply.status_code, reply.json()["error"]) == (502, "bad_upstream")


def test_an_unexpected_failure_is_a_json_500_without_traceback(gateway, upstream):
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug")

    upstream.behaviour[UPSTREAM] = explode
    reply = turn(gateway(), headers=auth())
    assert reply.status_code == 500
    assert reply.json()["error"] == "internal_error"
    assert "a bug" not in reply.text and "Traceback" not in reply.text


def test_health_reports_upstream_reachability(gateway, upstream):
    urls = ["http://rasa-1.test", "http://rasa-2.test"]
    upstream.behaviour[urls[1]] = httpx.ConnectError("refused")
    client = gateway(make_config(upstreams=urls))
    reply = client.get("/health")
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "ok",
        "upstreams": [{"url": urls[0], "reachable": True}, {"url": urls[1], "reachable": False}],
    }
    upstream.behaviour[urls[0]] = httpx.ConnectError("refused")
    down = client.get("/health")
    assert down.status_code == 503 and down.json()["status"] == "unavailable"


ACTIONS = "http://actions.test"


def supervisor_file(tmp_path, **services) -> object:
    path = tmp_path / "supervisor.json"
    path.write_text(json.dumps({"launcher_pid": 1, "services": services}))
    return path


def status_app(upstream, tmp_path, monkeypatch, **services):
    """A gateway with the launcher's state file and an action server, as ``python -m app.gateway serve``."""
    from fastapi.testclient import TestClient

    from app.observability import metrics

    monkeypatch.setattr(metrics.SUPERVISOR, "state_file", None)  # restored after the test
    app = create_app(
        make_config(),
        transport=upstream.transport,
        supervisor_state=supervisor_file(tmp_path, **services),
        actions_url=ACTIONS,
    )
    return TestClient(app, raise_server_exceptions=False)


def test_health_reports_the_services_restarts_and_the_degradation_level(upstream, tmp_path, monkeypatch):
    crashed = {"state": "running", "pid": 42, "restarts": 2, "last_exit_code": -9, "last_restart_at": "t"}
    fresh = {"state": "backoff", "pid": None, "restarts": 0, "last_exit_code": 1, "last_restart_at": None}
    gauge = (
        "# TYPE switchboard_degradation_level gauge\n"
        'switchboard_degradation_level{tenant="acme"} 0.0\n'
        'switchboard_degradation_level{tenant="globex"} 1.0\n'
    )
    upstream.behaviour[ACTIONS] = lambda request: httpx.Response(200, text=gauge)
    with status_app(upstream, tmp_path, monkeypatch, crm=crashed, gateway=fresh) as client:
        body = client.get("/health").json()
        exported = client.get("/metrics").text
    assert body["status"] == "ok"
    assert body["services"] == {
        "crm": {"state": "running", "restarts": 2, "last_exit_code": -9, "last_restart_at": "t"},
        "gateway": {"state": "backoff", "restarts": 0, "last_exit_code": 1, "last_restart_at": None},
    }
    assert body["degradation"] == {
        "level": "reduced",  # the worst tenant's
        "tenants": {"acme": "full", "globex": "reduced"},
        "reason": "reported by the action server",
    }
    assert 'switchboard_service_restarts_total{service="crm"} 2.0' in exported
    assert 'switchboard_service_restarts_total{service="gateway"} 0.0' in exported
    assert 'switchboard_service_up{service="crm"} 1.0' in exported
    assert 'switchboard_service_up{service="gateway"} 0.0' in exported


def test_health_says_static_while_the_action_server_is_down(upstream, tmp_path, monkeypatch):
    upstream.behaviour[ACTIONS] = httpx.ConnectError("refused")
    with status_app(upstream, tmp_path, monkeypatch) as client:
        reply = client.get("/health")
    assert reply.status_code == 200  # Rasa still answers: rules and the channel's static replies
    assert reply.json()["degradation"]["level"] == "static"
    assert "ConnectError" in reply.json()["degradation"]["reason"]


def test_the_app_builds_without_the_network_and_knows_the_plans():
    """Building the app opens no connection (uvicorn runs the lifespan, which creates the HTTP client)."""
    app = create_app(make_config(secret=SECRET, plans={"basic": "1/second"}))
    assert set(app.state.limiter.plans) == {"basic"}
    assert not hasattr(app.state, "pool")
