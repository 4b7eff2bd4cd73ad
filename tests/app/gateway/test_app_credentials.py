"""The gateway app with API keys beside tokens, token audience/issuer checks, and the channel secret it sends
Rasa (in-process, in front of the fake upstream)."""

from __future__ import annotations

import json
import time

import pytest

from app.channels.turns import CHANNEL_SECRET_HEADER
from app.data.db import get_engine, upgrade
from app.gateway.config import GatewayConfig
from app.gateway.keys import KEY_PATTERN, ApiKeyStore
from tests.app.gateway.conftest import auth, make_config, make_token, turn
from tests.app.observability.logs import json_log_lines

HASH_SECRET = "api-key-hash-secret-0123456789-abcdefgh"
CHANNEL_SECRET = "channel-secret-0123456789abcdef"


@pytest.fixture
def keys(sqlite_url: str) -> ApiKeyStore:
    upgrade(sqlite_url)
    return ApiKeyStore(get_engine(sqlite_url), HASH_SECRET)


def config_with(keys: ApiKeyStore | None = None, **update: object) -> GatewayConfig:
    values = dict(update)
    if keys is not None:
        values |= {"api_key_secret": HASH_SECRET, "api_key_store_url": str(keys.engine.url)}
    return GatewayConfig.model_validate(make_config().model_dump() | values)


def test_an_api_key_speaks_for_end_users_of_its_own_tenant_only(gateway, upstream, keys):
    issued = keys.issue("globex", "crm-sync", "CRM sync", "pro")
    client = gateway(config_with(keys))

    for sender in ("gus", "hanna"):
        reply = turn(client, sender=sender, headers={"X-Api-Key": issued.key, "X-Tenant-Id": "acme"})
        assert reply.status_code == 200, reply.text
        assert reply.json()[0]["recipient_id"] == f"globex:{sender}"  # the key's tenant, not the header's
    assert [r.headers["X-Tenant-Id"] for r in upstream.posts()] == ["globex", "globex"]
    assert all("x-api-key" not in r.headers for r in upstream.posts())  # the key stays at the gateway


@pytest.mark.parametrize("change", ["revoke", "tamper", "unknown"])
def test_revoked_or_unknown_keys_get_a_json_401_and_reach_no_upstream(gateway, upstream, keys, change):
    issued = keys.issue("acme", "billing", "Billing", "pro")
    key = issued.key
    if change == "revoke":
        keys.revoke("acme", issued.record.key_id)
    elif change == "tamper":
        key = key[:-3] + ("abc" if not key.endswith("abc") else "abd")
    else:
        key = f"sbk_{'0' * 12}_{'A' * 43}"
    reply = turn(gateway(config_with(keys)), headers={"X-Api-Key": key})

    assert reply.status_code == 401
    assert reply.json() == {
        "error": "api_key_revoked" if change == "revoke" else "invalid_api_key",
        "message": reply.json()["message"],
    }
    assert reply.headers["WWW-Authenticate"] == 'ApiKey header="X-Api-Key"'
    assert key not in reply.text and upstream.posts() == []


def test_a_gateway_without_api_keys_refuses_them(gateway, upstream, keys):
    issued = keys.issue("acme", "billing", "Billing", "pro")
    reply = turn(gateway(), headers={"X-Api-Key": issued.key})
    assert (reply.status_code, reply.json()["error"]) == (401, "api_keys_disabled")
    both = turn(gateway(config_with(keys)), headers={"X-Api-Key": issued.key, **auth()})
    assert (both.status_code, both.json()["error"]) == (400, "ambiguous_credentials")
    assert upstream.posts() == []


def test_a_key_is_rate_limited_by_its_plan_across_the_users_it_speaks_for(gateway, keys):
    issued = keys.issue("acme", "billing", "Billing", "free")
    client = gateway(
        config_with(keys, params=make_config(plans={"free": "3/minute", "pro": "60/minute"}).params)
    )

    statuses = [
        turn(client, sender=f"user-{i}", headers={"X-Api-Key": issued.key}).status_code for i in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    # an end user's own token budget is apart from the client's
    assert turn(client, sender="alice", headers=auth()).status_code == 200


def test_tokens_are_checked_against_the_configured_audience_and_issuer(gateway, upstream):
    client = gateway(config_with(jwt_audience="switchboard", jwt_issuer="https://idp.example.com/"))
    good = {"aud": "switchboard", "iss": "https://idp.example.com/"}
    cases = [
        (good, 200, None),
        ({**good, "aud": "billing"}, 401, "invalid_audience"),
        ({**good, "iss": "https://evil.example.com/"}, 401, "invalid_issuer"),
        ({**good, "nbf": int(time.time()) + 600}, 401, "token_not_yet_valid"),
        ({**good, "iat": int(time.time()) + 600}, 401, "token_not_yet_valid"),
    ]
    for claims, status, code in cases:
        reply = turn(client, headers=auth(make_token(**claims)))
        assert reply.status_code == status, (claims, reply.text)
        if code:
            assert reply.json()["error"] == code
    assert len(upstream.posts()) == 1


def test_the_channel_secret_goes_to_rasa_when_configured_and_not_otherwise(gateway, upstream):
    assert turn(gateway(), headers=auth()).status_code == 200
    assert turn(gateway(config_with(channel_secret=CHANNEL_SECRET)), headers=auth()).status_code == 200
    without, with_secret = upstream.posts()
    assert CHANNEL_SECRET_HEADER.lower() not in without.headers
    assert with_secret.headers[CHANNEL_SECRET_HEADER] == CHANNEL_SECRET
    assert json.loads(with_secret.content)["sender"] == "alice"


def test_logs_name_the_key_id_never_the_key(gateway, keys):
    issued = keys.issue("acme", "billing", "Billing", "pro")
    client = gateway(config_with(keys))
    with json_log_lines() as lines:
        assert turn(client, sender="bob", headers={"X-Api-Key": issued.key}).status_code == 200
        assert turn(client, headers={"X-Api-Key": issued.key[:-1] + "!"}).status_code == 401
        logged = lines()
    served = next(line for line in logged if line["event"] == "gateway.turn")
    assert (served["api_key"], served["tenant_id"], served["user_id"]) == (
        issued.record.key_id,
        "acme",
        "bob",
    )
    assert any(line["event"] == "gateway.turn.refused" for line in logged)
    assert KEY_PATTERN.match(issued.key)["secret"] not in json.dumps(logged)
