"""The tool registry: validation, identity from the context, timeouts, the breaker, LLM definitions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ConfigDict

from app.reliability.breakers import reset_breakers
from app.tools import Tool, ToolContext, ToolError, ToolRegistry, ToolRejected, ToolUnavailable

CTX = ToolContext("acme", "alice", "acme:alice", "req-1")


class Lookup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str


class Recorder:
    """A handler that records its calls and behaves as told."""

    def __init__(self, behaviour: str = "ok", sleep_s: float = 0.0) -> None:
        self.calls: list[tuple[ToolContext, Lookup]] = []
        self.behaviour, self.sleep_s = behaviour, sleep_s

    def __call__(self, ctx: ToolContext, args: Lookup) -> dict:
        self.calls.append((ctx, args))
        time.sleep(self.sleep_s)
        if self.behaviour == "down":
            raise ToolUnavailable("connection refused")
        if self.behaviour == "reject":
            raise ToolRejected("no such thing", 404)
        return {"key": args.key, "user": ctx.user_id}


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    reset_breakers("test-")
    yield
    reset_breakers("test-")


def registry_with(handler: Recorder, **tool_options) -> ToolRegistry:
    options = {
        "timeout_s": 1.0,
        "breaker": "test-dep",
        "fail_max": 2,
        "reset_timeout_s": 60.0,
        **tool_options,
    }
    return ToolRegistry([Tool("lookup", "Look a key up.", Lookup, handler, **options)])


def test_a_valid_call_runs_the_handler_with_the_turn_identity():
    handler = Recorder()
    result = registry_with(handler, llm=True).call("lookup", {"key": "k1"}, CTX)
    assert result.data == {"key": "k1", "user": "alice"} and result.personal and result.tool == "lookup"
    assert handler.calls == [(CTX, Lookup(key="k1"))]


@pytest.mark.parametrize("arguments", [{}, {"key": 3}, {"key": "k", "user_id": "bob"}])
def test_bad_arguments_never_reach_the_handler(arguments):
    handler = Recorder()
    with pytest.raises(ToolError) as error:
        registry_with(handler).call("lookup", arguments, CTX)
    assert error.value.reason == "invalid_arguments" and not error.value.unavailable
    assert handler.calls == []


def test_unknown_tools_and_duplicate_names_are_errors():
    registry = registry_with(Recorder())
    with pytest.raises(ToolError, match="unknown_tool"):
        registry.call("nope", {}, CTX)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Tool("lookup", "again", Lookup, Recorder()))


def test_a_slow_tool_times_out_and_timeouts_open_the_breaker():
    handler = Recorder(sleep_s=0.5)
    registry = registry_with(handler, timeout_s=0.1)
    for _ in range(2):  # fail_max
        with pytest.raises(ToolError) as error:
            registry.call("lookup", {"key": "k"}, CTX)
        assert error.value.reason == "timeout" and error.value.unavailable
    with pytest.raises(ToolError) as error:
        registry.call("lookup", {"key": "k"}, CTX)
    assert error.value.reason == "breaker_open"
    assert len(handler.calls) == 2  # the open breaker did not call the dependency


def test_a_down_dependency_opens_the_breaker_shared_by_its_tools():
    down = Recorder("down")
    other = Recorder()
    registry = registry_with(down)
    registry.register(Tool("other", "Same system.", Lookup, other, breaker="test-dep"))
    for _ in range(2):
        with pytest.raises(ToolError, match="unavailable"):
            registry.call("lookup", {"key": "k"}, CTX)
    with pytest.raises(ToolError, match="breaker_open"):
        registry.call("other", {"key": "k"}, CTX)
    assert other.calls == []


def test_rejections_do_not_count_against_the_breaker():
    handler = Recorder("reject")
    registry = registry_with(handler)
    for _ in range(5):
        with pytest.raises(ToolError) as error:
            registry.call("lookup", {"key": "k"}, CTX)
        assert error.value.reason == "rejected" and error.value.status == 404
    assert len(handler.calls) == 5


def test_only_tools_marked_for_llms_are_offered_with_their_json_schema():
    registry = registry_with(Recorder(), llm=True)
    registry.register(Tool("side_effect", "Moves money.", Lookup, Recorder()))
    (definition,) = registry.openai_tools()
    assert definition["type"] == "function"
    function = definition["function"]
    assert function["name"] == "lookup" and function["description"] == "Look a key up."
    assert function["parameters"]["properties"]["key"]["type"] == "string"
    assert function["parameters"]["required"] == ["key"]
    assert function["parameters"]["additionalProperties"] is False


def test_call_json_always_answers_the_model_with_json():
    handler = Recorder()
    registry = registry_with(handler, llm=True)
    registry.register(Tool("side_effect", "Moves money.", Lookup, Recorder()))
    text, result = registry.call_json("lookup", '{"key": "k9"}', CTX)
    assert json.loads(text) == {"key": "k9", "user": "alice"} and result is not None
    for name, arguments, reason in [
        ("lookup", "not json", "invalid_arguments"),
        ("lookup", "[1]", "invalid_arguments"),
        ("lookup", '{"key": 1}', "invalid_arguments"),
        ("side_effect", '{"key": "k"}', "unknown_tool"),
        ("missing", "{}", "unknown_tool"),
    ]:
        text, result = registry.call_json(name, arguments, CTX)
        assert json.loads(text)["error"] == reason and result is None
    assert len(handler.calls) == 1


@pytest.mark.anyio
async def test_acall_does_not_block_the_event_loop():
    import anyio

    handler = Recorder(sleep_s=0.3)
    registry = registry_with(handler)
    ticks = 0
    done = threading.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await anyio.sleep(0.02)

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        result = await registry.acall("lookup", {"key": "k"}, CTX)
        done.set()
    assert result.data["key"] == "k" and ticks >= 5
