"""End to end: the launcher serves the registry's challenger model to a canary share of users.

With ``flags.tenants.globex.challenger_percent: 100`` and a challenger model present, ``Stack`` starts a
``rasa-canary`` server next to the champion's Rasa, and the gateway sends globex's users to it (acme stays on
the champion). Killing the canary server sends its users back to the champion without a failed turn.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterator

import httpx
import pytest
import yaml
from pydantic import SecretStr

from app.gateway.auth import mint_token
from app.stack import Stack
from tests.conftest import free_port, start_guarded

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def canary_stack(bot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("canary")
    challenger = state / "challenger.tar.gz"
    shutil.copyfile(bot.settings.model_path, challenger)  # stands for a newer registry version
    params = yaml.safe_load(bot.settings.params_file.read_text())
    params["flags"] = {
        "defaults": {"challenger_percent": 0},
        "tenants": {"globex": {"challenger_percent": 100}},
    }
    (state / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    settings = bot.settings.model_copy(
        update={
            "state_dir": state,
            "params_file": state / "params.yaml",
            "challenger_model_path": challenger,
            "rasa_port": free_port(),
            "canary_port": free_port(),
            "gateway_port": free_port(),
            "gateway_upstreams": "",
            "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
        }
    )
    stack = Stack(settings, services=("rasa", "gateway"))  # the bot fixture's CRM and action server
    assert stack.canary
    start_guarded(stack, timeout=300)
    yield stack
    stack.stop()


def hello(stack: Stack, tenant: str, user: str) -> httpx.Response:
    secret = stack.settings.jwt_secret.get_secret_value()
    return httpx.post(
        f"{stack.settings.gateway_url}/webhooks/rest/webhook",
        json={"sender": user, "message": "hello"},
        timeout=60,
        headers={"Authorization": f"Bearer {mint_token(secret, tenant=tenant, user=user, plan='pro')}"},
    )


def upstreams_logged(stack: Stack) -> dict[str, str]:
    """``{user: upstream}`` from the gateway's JSON log."""
    lines = (stack.settings.state_dir / "logs" / "gateway.log").read_text().splitlines()
    turns = [json.loads(line) for line in lines if line.startswith("{") and '"gateway.turn"' in line]
    return {t["user_id"]: t["upstream"] for t in turns}


def test_the_canary_tenant_is_served_by_the_challenger_and_falls_back_when_it_dies(canary_stack):
    assert [s.name for s in canary_stack.services] == ["rasa", "rasa-canary", "gateway"]
    champion = hello(canary_stack, "acme", "ann")
    challenger = hello(canary_stack, "globex", "gus")
    assert champion.status_code == challenger.status_code == 200
    assert champion.headers["X-Model-Variant"] == "champion"
    assert challenger.headers["X-Model-Variant"] == "challenger"
    assert "Northwind Goods assistant" in champion.json()[0]["text"]  # each tenant greets in its own words
    assert "Globex Energy assistant" in challenger.json()[0]["text"]
    logged = upstreams_logged(canary_stack)
    assert logged["gus"] == canary_stack.canary_url and logged["ann"] == canary_stack.rasa_urls[0]

    canary_stack.kill("rasa-canary")
    after = hello(canary_stack, "globex", "gwen")
    assert after.status_code == 200 and after.headers["X-Model-Variant"] == "champion"
