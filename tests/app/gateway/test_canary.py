"""Canary routing of model versions: a sticky, per-tenant share of users goes to the challenger's Rasa."""

from __future__ import annotations

import json

import httpx

from app.flags import in_canary

from .conftest import UPSTREAM, auth, make_config, make_token, turn

CHALLENGER = "http://rasa-challenger.test"


def canary_config(percent: float, tenants: dict | None = None):
    config = make_config()
    return config.model_copy(
        update={
            "canary_upstreams": [CHALLENGER],
            "flags": {"defaults": {"challenger_percent": percent}, "tenants": tenants or {}},
        }
    )


def route(client, user: str, tenant: str = "acme") -> httpx.Response:
    return turn(client, sender=user, headers=auth(make_token(sub=user, tenant=tenant)))


def test_the_flag_share_of_users_reaches_the_challenger_and_stays_there(gateway, upstream):
    client = gateway(canary_config(30))
    users = [f"user{i}" for i in range(60)]
    variants = {u: route(client, u).headers["X-Model-Variant"] for u in users}
    expected = {u: "challenger" if in_canary("acme", u, 30, salt="nlu-model") else "champion" for u in users}
    assert variants == expected and 5 < list(variants.values()).count("challenger") < 35
    hosts = {r.url.host for r in upstream.posts()}
    assert hosts == {"rasa-challenger.test", "rasa-1.test"}
    again = {u: route(client, u).headers["X-Model-Variant"] for u in users[:10]}
    assert again == {u: variants[u] for u in users[:10]}  # sticky per user


def test_per_tenant_percentages_and_no_canary_without_challenger_servers(gateway, upstream):
    client = gateway(canary_config(0, tenants={"globex": {"challenger_percent": 100}}))
    assert route(client, "bob").headers["X-Model-Variant"] == "champion"
    assert route(client, "bob", tenant="globex").headers["X-Model-Variant"] == "challenger"
    plain = gateway(make_config())  # no challenger upstreams: everyone on the champion
    assert route(plain, "bob", tenant="globex").headers["X-Model-Variant"] == "champion"


def test_an_unreachable_challenger_falls_back_to_the_champion(gateway, upstream):
    upstream.behaviour[CHALLENGER] = httpx.ConnectError("refused")
    client = gateway(canary_config(100))
    reply = route(client, "carol")
    assert reply.status_code == 200 and reply.headers["X-Model-Variant"] == "champion"
    assert reply.json()[0]["text"] == f"hello from {UPSTREAM}"
    # the turn Rasa stores says which variant really answered it (the turn records keep it)
    (served,) = upstream.posts()
    assert json.loads(served.content)["metadata"] == {"model_variant": "champion"}


def test_the_challenger_is_told_it_serves_the_turn(gateway, upstream):
    route(gateway(canary_config(100)), "erin")
    (served,) = upstream.posts()
    assert str(served.url).startswith(CHALLENGER)
    assert json.loads(served.content)["metadata"] == {"model_variant": "challenger"}


def test_metrics_count_turns_by_status_plan_and_variant(gateway, upstream):
    client = gateway(canary_config(100))
    before = client.get("/metrics").text
    route(client, "dave")
    turn(client, sender="dave")  # no token: 401
    lines = client.get("/metrics").text.splitlines()
    assert (
        'switchboard_gateway_turns_total{plan="pro",status="200",tenant="acme",variant="challenger"} '
        in "\n".join(
            line[: line.rindex(" ") + 1]
            for line in lines
            if line.startswith("switchboard_gateway_turns_total{")
        )
    )
    assert any(line.startswith('switchboard_gateway_turns_total{plan="-",status="401"') for line in lines)
    assert before != "\n".join(lines)
