"""benchmarks/rest_latency.py: the loopback guard, turn accounting and the exit paths (its percentiles are
app.analytics.stats', tested in tests/app/analytics/test_stats.py).

The script is not a package module, so it is loaded from its path. Turn accounting runs against
``httpx.MockTransport``; nothing here needs a running bot.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest

from tests.benchmarks import script_module


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The benchmark script as a module."""
    yield from script_module("rest_latency")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5005",
        "http://127.0.0.1:5005/",
        "http://127.8.9.10:5005",
        "http://localhost:5005",
        "http://LOCALHOST",
        "https://127.0.0.1",
    ],
)
def test_loopback_urls_are_accepted(bench: ModuleType, url: str) -> None:
    assert bench.is_loopback_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1:5005",
        "http://192.168.1.5",
        "http://0.0.0.0:5005",
        "http://example.com",
        "http://127.0.0.1.example.com",
        "http://localhost.example.com",
        "http://user@example.com",
        "http://[::ffff:8.8.8.8]",
        "ftp://127.0.0.1",
        "127.0.0.1:5005",
        "",
    ],
)
def test_other_urls_are_refused(bench: ModuleType, url: str) -> None:
    assert not bench.is_loopback_url(url)


def mock_client(transport: httpx.MockTransport) -> httpx.AsyncClient:
    """An AsyncClient whose requests go to ``transport`` instead of the network."""
    return httpx.AsyncClient(base_url="http://127.0.0.1:5005", transport=transport)


def test_run_cell_shares_turns_counts_errors_and_rotates_senders(bench: ModuleType) -> None:
    senders: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        senders.append(json.loads(request.content)["sender"])
        return httpx.Response(500 if len(senders) % 4 == 0 else 200, json=[])

    async def run() -> object:
        async with mock_client(httpx.MockTransport(handler)) as http:
            return await bench.run_cell(
                http, "greet", concurrency=3, turns=20, conversation_turns=2, deadline=time.monotonic() + 60
            )

    result = asyncio.run(run())

    assert len(senders) == 20
    assert (len(result.latencies_ms), result.errors) == (15, 5)
    assert all(senders.count(sender) <= 2 for sender in senders)  # a new conversation every 2 turns
    summary = result.summary()
    assert (summary["n"], summary["errors"], summary["concurrency"]) == (15, 5, 3)
    assert summary["p50_ms"] is not None and summary["req_per_s"] > 0


def test_run_cell_starts_no_turn_after_the_deadline(bench: ModuleType) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected after the deadline")

    async def run() -> object:
        async with mock_client(httpx.MockTransport(handler)) as http:
            return await bench.run_cell(
                http, "baseline", concurrency=2, turns=10, conversation_turns=10, deadline=time.monotonic()
            )

    summary = asyncio.run(run()).summary()

    assert (summary["n"], summary["errors"]) == (0, 0)
    assert summary["p50_ms"] is None and summary["req_per_s"] is None


def test_non_loopback_url_is_refused_with_exit_2(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--url", "http://example.com:5005"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing http://example.com:5005" in err


def test_unreachable_bot_exits_2_with_one_line(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"

    assert bench.main(["--url", url, "--turns", "1", "--max-seconds", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"not reachable at {url}" in err and "make run" in err and "Traceback" not in err
