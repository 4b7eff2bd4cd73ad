"""benchmarks/handler_latency.py: reply signatures, misrouting and error accounting, the loopback guard."""

from __future__ import annotations

import httpx
import pytest
from rich.console import Console

from tests.benchmarks import script_module


@pytest.fixture(scope="module")
def bench():
    yield from script_module("handler_latency")


REPLIES = {
    "hello": "Hi! I'm the assistant.",
    "Where is my order ORD-10042?": "Your order ORD-10042 has shipped with DHL.",
    "How long do I have to return an item?": "30 days.\n\nSource: Returns",
    "hmm so about the money thing": "Sorry, I'm not sure I understood. Did you mean:",
    "I want to talk to a human agent": "Sorry, our system is down.",  # misrouted: no ticket
}


def fake_bot(request: httpx.Request) -> httpx.Response:
    text = httpx.Response(200, content=request.content).json()["message"]
    if text.startswith("My kettle") and "case 1003" in text:
        return httpx.Response(500, json={"error": "boom"})
    reply = REPLIES.get(text, "It is covered.\n\nSources: Warranty")
    return httpx.Response(200, json=[{"recipient_id": "x", "text": reply}])


def test_each_handler_is_counted_misrouted_and_failed_turns_apart(bench):
    http = bench.client("http://127.0.0.1:5005", httpx.MockTransport(fake_bot))
    rows = {r.handler.name: r.summary() for r in bench.measure(http, turns=4, warmup=1, console=Console())}
    assert rows["plain_rasa"]["n"] == 4 and rows["skill"]["n"] == 4 and rows["cache_hit"]["n"] == 4
    assert rows["knowledge_t1"]["errors"] == 1 and rows["knowledge_t1"]["n"] == 3  # case 1003 failed
    assert (
        rows["handoff"]["misrouted"] == 4 and rows["handoff"]["n"] == 0 and rows["handoff"]["p50_ms"] is None
    )
    assert rows["handoff"]["example"] == "Sorry, our system is down."


def test_a_non_loopback_url_is_refused(bench, capsys):
    assert bench.main(["--url", "http://example.com:5005"]) == 2
    assert "loopback URLs only" in capsys.readouterr().err
