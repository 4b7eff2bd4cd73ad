"""benchmarks/gateway.py's own parts (no bot): the bench params, per-sender tokens, the argument checks.

The script is not a package module, so it is loaded from its path; ``sys.path``, which the script reorders
(so ``benchmarks/nlu.py`` cannot shadow the ``nlu`` package), is restored afterwards.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import jwt
import pytest
import yaml

from app.gateway.config import load_params
from tests.app.gateway.conftest import SECRET

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "gateway.py"
ROOT = SCRIPT.parents[1]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    saved_path = list(sys.path)
    spec = importlib.util.spec_from_file_location("gateway_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
    sys.path[:] = saved_path


def test_bench_params_add_a_plan_no_run_can_exhaust(bench, tmp_path):
    dest = bench.bench_params(ROOT / "params.yaml", tmp_path / "params.yaml")
    params = load_params(yaml.safe_load(dest.read_text())["gateway"])
    assert params.plans["bench"] == "1000000/minute" and params.tenant_limit == "1000000/minute"
    assert {"free", "pro", "enterprise"} <= set(params.plans)  # the real plans are kept


def test_the_token_hook_signs_each_sender_as_itself(bench):
    seen: list[httpx.Request] = []

    async def run() -> None:
        transport = httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json=[]))
        async with httpx.AsyncClient(
            base_url="http://gw.test",
            transport=transport,
            event_hooks={"request": [bench.tokens_hook(SECRET, "acme")]},
        ) as client:
            for sender in ("s1", "s2", "s1"):
                await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": "hello"})
            await client.get("/")

    asyncio.run(run())
    posts = [r for r in seen if r.method == "POST"]
    subs = [jwt.decode(r.headers["Authorization"][7:], SECRET, algorithms=["HS256"])["sub"] for r in posts]
    assert subs == [json.loads(r.content)["sender"] for r in posts] == ["s1", "s2", "s1"]
    assert posts[0].headers["Authorization"] == posts[2].headers["Authorization"]  # one token per sender
    assert "authorization" not in seen[-1].headers


def test_remote_rasa_urls_are_refused(bench, capsys):
    assert bench.main(["--rasa-url", "http://example.com:5005"]) == 2
    assert "refusing" in capsys.readouterr().err


def test_a_missing_model_is_refused(bench, tmp_path, capsys):
    assert bench.main(["--model", str(tmp_path / "none.tar.gz")]) == 2
    assert "no trained model" in capsys.readouterr().err
