"""End to end: the served stack's processes never write a secret of the run to their logs (or anywhere in
the state directory).

The launcher's ``Stack`` starts every service (CRM, actions, Rasa, gateway, turn recorder, Streamlit) with a
JWT secret, an API-key hash secret, a channel secret and an LLM API key (the test LLM server refuses calls
without it, so the tier-1 turn proves the key was used); an API key is issued with the CLI. A few turns go
through the gateway with a token and with the key, some fail authentication, two go to Rasa directly
(without and with the channel secret); then every file under the state directory is searched for each
secret, for the key, and for the tokens sent.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
import yaml
from pydantic import SecretStr

from app.gateway.auth import mint_token
from app.stack import Stack
from tests.conftest import ROOT, free_port, guarded_env, params_with_llm_tiers, start_guarded
from tests.e2e.test_brain import HARD
from tests.llm_server import LLMTestServer
from tests.llm_server.app import ServerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LLM_KEY_ENV = "SWITCHBOARD_TEST_TIER_API_KEY"
WEBHOOK = "/webhooks/rest/webhook"
PII_EMAIL = "dana.secret-address@example.com"


@dataclass
class Run:
    stack: Stack
    llm: LLMTestServer
    secrets: dict[str, str]  # what must never be written: name -> value


@pytest.fixture(scope="module")
def run(pipeline_run, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    llm_key = f"sk-test-{secrets.token_urlsafe(24)}"
    values = {
        "jwt secret": secrets.token_urlsafe(32),
        "api key hash secret": secrets.token_urlsafe(32),
        "channel secret": secrets.token_urlsafe(24),
        "llm api key": llm_key,
    }
    state = tmp_path_factory.mktemp("secrets")
    with LLMTestServer(ServerConfig(api_key=llm_key)) as llm, pytest.MonkeyPatch.context() as env:
        params = params_with_llm_tiers(llm.base_url, state / "params.yaml")
        raw = yaml.safe_load(params.read_text())
        for tier in raw["tiers"]["endpoints"].values():
            tier["api_key_env"] = LLM_KEY_ENV
        params.write_text(yaml.safe_dump(raw, sort_keys=False))
        env.setenv(LLM_KEY_ENV, llm_key)  # the action server reads it from its environment
        from app.settings import Settings

        settings = Settings(
            rasa_port=free_port(),
            action_port=free_port(),
            streamlit_port=free_port(),
            gateway_port=free_port(),
            state_dir=state,
            model_path=pipeline_run.root / "nlu" / "serving" / "model.tar.gz",
            index_dir=pipeline_run.root / "knowledge" / "index",
            params_file=params,
            jwt_secret=SecretStr(values["jwt secret"]),
            api_key_secret=SecretStr(values["api key hash secret"]),
            channel_secret=SecretStr(values["channel secret"]),
        )
        stack = Stack(settings)
        start_guarded(stack, timeout=300)
        try:
            yield Run(stack, llm, values)
        finally:
            stack.stop()


def gateway_post(run: Run, sender: str, message: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{run.stack.settings.gateway_url}{WEBHOOK}",
        json={"sender": sender, "message": message},
        headers=headers,
        timeout=120,
    )


def issue_key(run: Run) -> str:
    """An API key for a server-to-server client of acme, issued with the CLI as an operator would."""
    done = subprocess.run(
        [sys.executable, "-m", "app.gateway", "key", "issue", "--tenant", "acme", "--client", "helpdesk-sync",
         "--plan", "enterprise", "--name", "Helpdesk sync"],
        cwd=ROOT,
        env=guarded_env(
            {
                "SWITCHBOARD_DATABASE_URL": run.stack.settings.db_url,
                "SWITCHBOARD_API_KEY_SECRET": run.secrets["api key hash secret"],
            }
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_no_secret_of_the_run_is_written_by_any_service(run):
    s = run.stack.settings
    key = issue_key(run)
    token = mint_token(run.secrets["jwt secret"], tenant="acme", user="alice", plan="pro")
    forged = jwt.encode({"sub": "alice", "tenant": "acme", "plan": "pro", "exp": 2**31}, "x" * 32)
    sent = {"api key": key, "token": token, "forged token": forged}

    # served turns: a token, then the key speaking for an end user with a question that needs the LLM tier
    assert gateway_post(run, "alice", "hello", {"Authorization": f"Bearer {token}"}).status_code == 200
    run.llm.add_rule(model="small", pattern="(?i)kettle", quote=1)
    reply = gateway_post(run, f"dana-{uuid.uuid4().hex[:6]}", HARD, {"X-Api-Key": key})
    assert reply.status_code == 200, reply.text
    assert run.llm.requests, "the LLM tier was never called with its key: the test would prove nothing"
    pii = gateway_post(run, "alice", f"my email is {PII_EMAIL}", {"Authorization": f"Bearer {token}"})
    assert pii.status_code == 200

    # failed authentication: a tampered key, a token signed with another secret, no credentials
    tampered = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert gateway_post(run, "alice", "hello", {"X-Api-Key": tampered}).status_code == 401
    assert gateway_post(run, "alice", "hello", {"Authorization": f"Bearer {forged}"}).status_code == 401
    assert gateway_post(run, "alice", "hello", {}).status_code == 401

    # Rasa's channel itself: refused without the channel secret, served with it
    direct = f"{s.rasa_url}{WEBHOOK}"
    refused = httpx.post(
        direct, json={"sender": "eve", "message": "hello"}, headers={"X-Tenant-Id": "globex"}
    )
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_channel_secret")
    served = httpx.post(
        direct, json={"sender": "eve", "message": "hello"}, headers=s.channel_headers, timeout=60
    )
    assert served.status_code == 200, served.text

    run.stack.stop()  # every process flushes and closes its log
    logs = {p.name: p.read_bytes() for p in files_under(s.state_dir / "logs")}
    services = {f"{service.name}.log" for service in run.stack.services}
    assert {"crm.log", "actions.log", "rasa.log", "gateway.log", "recorder.log", "streamlit.log"} <= services
    assert services <= set(logs)
    for name in ("actions.log", "rasa.log", "gateway.log"):  # the CRM service logs warnings only
        assert logs[name], f"{name} is empty: nothing was checked"
    assert b"gateway.turn.refused" in logs["gateway.log"] and b"invalid_api_key" in logs["gateway.log"]

    leaks = [
        f"{what} in {path.relative_to(s.state_dir)}"
        for path in files_under(s.state_dir)
        for what, value in {**run.secrets, **sent}.items()
        if value.encode() in path.read_bytes()
    ]
    assert leaks == []
    assert [name for name, text in logs.items() if PII_EMAIL.encode() in text] == []
