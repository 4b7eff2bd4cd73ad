"""Tests of the test LLM server, through the official ``openai`` client and plain ``httpx``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import ValidationError

from . import LLMTestServer, ScriptRule, ServerConfig, count_tokens

REPO_ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What is the refund policy?"
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def shared_llm() -> Iterator[LLMTestServer]:
    with LLMTestServer() as server:
        yield server


@pytest.fixture
def llm(shared_llm: LLMTestServer) -> LLMTestServer:
    """The module's server, back to its construction state for every test."""
    shared_llm.reset()
    return shared_llm


@pytest.fixture
def client(llm: LLMTestServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm.base_url, api_key="test-key", max_retries=0, timeout=5.0)


def ask(client: openai.OpenAI, text: str = QUESTION, model: str = "small", **params: Any) -> Any:
    """One chat completion with a single user message."""
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **params)


def post_chat(llm: LLMTestServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{llm.base_url}/chat/completions", json=body, headers=headers, timeout=5.0)


# ---------------------------------------------------------------------------------------- normal answers


def test_health_and_models(llm: LLMTestServer, client: openai.OpenAI) -> None:
    assert httpx.get(f"{llm.url}/health").json() == {"status": "ok"}
    assert [model.id for model in client.models.list()] == ["small", "large"]


def test_tokenizer_counts_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("don't  stop") == 4
    assert count_tokens("") == 0


def test_default_reply_shape_and_usage(client: openai.OpenAI) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
    response = client.chat.completions.create(model="large", messages=messages)

    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-")
    assert response.model == "large"
    [choice] = response.choices
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == f"Echo: {QUESTION}"
    # "Be brief." + "\n" + QUESTION -> Be, brief, ., What, is, the, refund, policy, ?
    assert response.usage is not None
    assert response.usage.prompt_tokens == 9
    assert response.usage.completion_tokens == count_tokens(f"Echo: {QUESTION}") == 8
    assert response.usage.total_tokens == 17


def test_multipart_content_is_read(client: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]
    response = client.chat.completions.create(model="small", messages=[{"role": "user", "content": parts}])
    assert response.choices[0].message.content == "Echo: Hello\nthere"
    assert response.usage is not None and response.usage.prompt_tokens == 2


@pytest.mark.parametrize("limit_param", ["max_tokens", "max_completion_tokens"])
def test_token_limit_truncates_with_finish_reason_length(client: openai.OpenAI, limit_param: str) -> None:
    response = ask(client, **{limit_param: 3})
    assert response.choices[0].message.content == "Echo: What"
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None and response.usage.completion_tokens == 3

    exact = ask(client, **{limit_param: 8})
    assert (exact.choices[0].message.content, exact.choices[0].finish_reason) == (f"Echo: {QUESTION}", "stop")


def test_json_mode_returns_valid_json(client: openai.OpenAI) -> None:
    response = ask(client, response_format={"type": "json_object"})
    assert json.loads(response.choices[0].message.content or "") == {"answer": f"Echo: {QUESTION}"}


def test_n_choices_differ_by_index(client: openai.OpenAI) -> None:
    single = ask(client)
    response = ask(client, n=3)

    assert [choice.index for choice in response.choices] == [0, 1, 2]
    contents = [choice.message.content for choice in response.choices]
    assert contents[0] == single.choices[0].message.content
    assert contents[1:] == [f"Echo: {QUESTION} (variant 1)", f"Echo: {QUESTION} (variant 2)"]
    assert response.usage is not None
    assert response.usage.completion_tokens == sum(count_tokens(text or "") for text in contents)

    as_json = ask(client, n=2, response_format={"type": "json_object"})
    parsed = [json.loads(choice.message.content or "") for choice in as_json.choices]
    assert parsed == [{"answer": f"Echo: {QUESTION}"}, {"answer": f"Echo: {QUESTION}", "variant": 1}]


def test_same_request_same_answer(client: openai.OpenAI) -> None:
    first = ask(client, n=2, temperature=0.0)
    second = ask(client, n=2, temperature=1.7)
    assert [c.message.content for c in first.choices] == [c.message.content for c in second.choices]
    assert first.usage == second.usage


def test_default_reply_template_is_configurable(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.update(default_reply="[{model}] You said: {prompt}")
    assert ask(client, "hi", model="large").choices[0].message.content == "[large] You said: hi"


def test_requests_are_logged(llm: LLMTestServer, client: openai.OpenAI) -> None:
    ask(client, "first")
    ask(client, "second", model="large", temperature=0.2)
    assert [body["messages"][0]["content"] for body in llm.requests] == ["first", "second"]
    assert llm.requests[1]["temperature"] == 0.2
    assert llm.request_counts == {"small": 1, "large": 1}


# -------------------------------------------------------------------------------------- scripted replies


def test_scripted_rules_first_match_wins(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.add_rule(model="large", pattern="refund", content="Large model refund answer.")
    llm.add_rule(pattern=r"(?i)\brefund", content="Refunds take 5 days.")
    llm.add_rule(system_pattern="triage", json_object={"intent": "billing", "confidence": 0.9})

    assert ask(client, "Refund please").choices[0].message.content == "Refunds take 5 days."
    assert (
        ask(client, "refund please", model="large").choices[0].message.content == "Large model refund answer."
    )
    assert ask(client, "Where is my parcel?").choices[0].message.content == "Echo: Where is my parcel?"

    messages = [{"role": "system", "content": "You triage tickets."}, {"role": "user", "content": "My bill"}]
    triaged = client.chat.completions.create(model="small", messages=messages, n=2)
    parsed = [json.loads(choice.message.content or "") for choice in triaged.choices]
    assert parsed == [
        {"intent": "billing", "confidence": 0.9},
        {"intent": "billing", "confidence": 0.9, "variant": 1},
    ]


def test_scripted_tool_call_needs_the_tool_offered(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.add_rule(pattern="weather", tool_call={"name": "get_weather", "arguments": {"city": "Paris"}})

    response = ask(client, "weather in Paris?", tools=[WEATHER_TOOL])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})

    assert ask(client, "weather in Paris?").choices[0].message.content == "Echo: weather in Paris?"
    no_tools = ask(client, "weather in Paris?", tools=[WEATHER_TOOL], tool_choice="none")
    assert no_tools.choices[0].message.tool_calls is None


def test_a_tool_is_called_once_per_question_then_its_result_answers(
    llm: LLMTestServer, client: openai.OpenAI
) -> None:
    llm.add_rule(pattern="weather", tool_call={"name": "get_weather", "arguments": {"city": "Paris"}})
    llm.add_rule(tool_result_pattern='"sky": "clear"', content="It is sunny in Paris.")
    messages: list[dict[str, Any]] = [{"role": "user", "content": "weather in Paris?"}]
    first = client.chat.completions.create(model="small", messages=messages, tools=[WEATHER_TOOL])
    [call] = first.choices[0].message.tool_calls or []
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'},
    ]
    second = client.chat.completions.create(model="small", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.tool_calls is None  # answered already: no second call
    assert second.choices[0].message.content == "It is sunny in Paris."
    messages[-1]["content"] = '{"sky": "rain"}'  # another result: the content rule does not match
    third = client.chat.completions.create(model="small", messages=messages, tools=[WEATHER_TOOL])
    assert third.choices[0].message.content == "Echo: weather in Paris?"
    messages.append({"role": "user", "content": "and the weather tomorrow?"})  # a new question: a new call
    fourth = client.chat.completions.create(model="small", messages=messages, tools=[WEATHER_TOOL])
    assert (fourth.choices[0].message.tool_calls or [None])[0] is not None


def test_invalid_rules_are_rejected() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        ScriptRule(pattern="x", content="a", json_object={"b": 1})
    with pytest.raises(ValidationError, match="exactly one"):
        ScriptRule(pattern="x")
    with pytest.raises(ValidationError, match="invalid regular expression"):
        ScriptRule(pattern="(unclosed", content="a")


# --------------------------------------------------------------------------------------- request errors


def test_stream_is_refused_with_openai_error(llm: LLMTestServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, stream=True)
    assert caught.value.code == "unsupported_parameter"

    response = post_chat(
        llm, {"model": "small", "messages": [{"role": "user", "content": "x"}], "stream": True}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert {"message", "type", "code"} <= error.keys()
    assert (error["type"], error["param"]) == ("invalid_request_error", "stream")


def test_invalid_requests_are_bad_requests(llm: LLMTestServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="n"):
        ask(client, n=9)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="small", messages=[])
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        ask(client, model="gpt-unknown")
    not_json = httpx.post(f"{llm.base_url}/chat/completions", content=b"{oops", timeout=5.0)
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, "invalid_json")
    assert httpx.get(f"{llm.base_url}/embeddings").json()["error"]["type"] == "invalid_request_error"
    assert llm.request_counts == {}


def test_api_key_is_checked_when_configured() -> None:
    with LLMTestServer(ServerConfig(api_key="sk-right")) as secured:
        wrong = openai.OpenAI(base_url=secured.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            ask(wrong)
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        missing = post_chat(secured, {"model": "small", "messages": [{"role": "user", "content": "x"}]})
        assert (missing.status_code, missing.json()["error"]["code"]) == (401, "invalid_api_key")
        assert secured.requests == []

        right = openai.OpenAI(base_url=secured.base_url, api_key="sk-right", max_retries=0)
        assert ask(right, "hi").choices[0].message.content == "Echo: hi"
        assert httpx.get(f"{secured.url}/health").status_code == 200

        secured.update(api_key=None)
        assert ask(wrong, "hi").choices[0].message.content == "Echo: hi"


# ----------------------------------------------------------------------------------------------- faults


def test_fail_next_then_recover(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.set_faults(fail_next=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client)
        assert caught.value.status_code == 500
        assert caught.value.body == {
            "message": "Injected fault: HTTP 500 from the Switchboard test LLM server.",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    assert ask(client).choices[0].message.content == f"Echo: {QUESTION}"
    assert llm.request_counts == {"small": 3}


def test_503_is_an_internal_server_error(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.set_faults(fail_next=1, error_status=503)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client)
    assert (caught.value.status_code, caught.value.code) == (503, "service_unavailable")


def test_rate_limit_carries_retry_after(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.set_faults(fail_next=1, error_status=429, retry_after_s=2)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client)
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded"


def test_client_retries_through_rate_limits(llm: LLMTestServer) -> None:
    llm.set_faults(fail_next=2, error_status=429, retry_after_s=0.05)
    retrying = openai.OpenAI(base_url=llm.base_url, api_key="test-key", max_retries=2)
    assert ask(retrying).choices[0].message.content == f"Echo: {QUESTION}"
    assert llm.request_counts == {"small": 3}


def test_error_rate_is_deterministic(llm: LLMTestServer, client: openai.OpenAI) -> None:
    def outcomes() -> list[str]:
        results = []
        for _ in range(6):
            try:
                ask(client)
                results.append("ok")
            except openai.InternalServerError:
                results.append("error")
        return results

    llm.set_faults(error_rate=0.5)
    first = outcomes()
    assert first == ["ok", "error"] * 3
    llm.set_faults(error_rate=0.5)  # changing a scope restarts its sequence
    assert outcomes() == first


def test_hang_longer_than_client_timeout(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.set_faults(hang_next=1, hang_s=3)
    with pytest.raises(openai.APITimeoutError):
        ask(client.with_options(timeout=1.0))
    assert ask(client).choices[0].message.content == f"Echo: {QUESTION}"


def test_latency_applies_to_every_request(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.set_faults(latency_ms=2000)
    for _ in range(2):
        with pytest.raises(openai.APITimeoutError):
            ask(client.with_options(timeout=0.3))
    llm.set_faults(latency_ms=0)
    assert ask(client).choices[0].finish_reason == "stop"


def test_malformed_response_body(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.set_faults(malformed_next=1)
    with pytest.raises(json.JSONDecodeError):
        ask(client)
    assert ask(client).choices[0].message.content == f"Echo: {QUESTION}"

    llm.set_faults(malformed_rate=1.0)
    raw = post_chat(llm, {"model": "small", "messages": [{"role": "user", "content": "x"}]})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        raw.json()


def test_per_model_fault_override(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.set_faults(model="large", error_rate=1.0, error_status=503)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            ask(client, model="large")
        assert ask(client, model="small").choices[0].message.content == f"Echo: {QUESTION}"
    assert llm.request_counts == {"large": 2, "small": 2}

    llm.clear_model_faults("large")
    assert ask(client, model="large").choices[0].finish_reason == "stop"


def test_reset_restores_the_construction_state(llm: LLMTestServer, client: openai.OpenAI) -> None:
    llm.add_rule(pattern=".", content="scripted")
    llm.set_faults(fail_next=5, latency_ms=10)
    with pytest.raises(openai.InternalServerError):
        ask(client)
    llm.reset()
    assert ask(client).choices[0].message.content == f"Echo: {QUESTION}"
    assert llm.config == ServerConfig()
    assert llm.request_counts == {"small": 1} and len(llm.requests) == 1


# -------------------------------------------------------------------------------------------- admin HTTP


def test_admin_http_reconfigures_at_runtime(llm: LLMTestServer, client: openai.OpenAI) -> None:
    admin = httpx.Client(base_url=f"{llm.url}/admin", timeout=5.0)

    update = {
        "faults": {"fail_next": 1, "error_status": 429, "retry_after_s": 1},
        "default_reply": "R: {prompt}",
    }
    assert admin.post("/config", json=update).status_code == 200
    with pytest.raises(openai.RateLimitError):
        ask(client, "hi")
    assert ask(client, "hi").choices[0].message.content == "R: hi"
    current = admin.get("/config").json()
    assert (current["faults"]["fail_next"], current["faults"]["error_status"]) == (0, 429)

    assert admin.post("/config", json={"model_faults": {"large": {"malformed_next": 1}}}).status_code == 200
    with pytest.raises(json.JSONDecodeError):
        ask(client, model="large")
    assert admin.post("/config", json={"model_faults": {"large": None}}).json()["model_faults"] == {}

    rule = {"model": "small", "pattern": "order", "json_object": {"order": 42}}
    assert admin.post("/rules", json=rule).status_code == 200
    assert json.loads(ask(client, "my order").choices[0].message.content or "") == {"order": 42}

    received = admin.get("/requests").json()
    assert received["request_counts"] == {"small": 3, "large": 1}
    assert [body["messages"][0]["content"] for body in received["requests"]][-1] == "my order"

    for invalid in ({"faults": {"error_rate": 2}}, {"faults": {"no_such_fault": 1}}, {"models": []}):
        assert admin.post("/config", json=invalid).status_code == 422
    assert admin.get("/config").json()["models"] == ["small", "large"]

    assert admin.post("/reset").json() == ServerConfig().model_dump()
    assert admin.get("/requests").json() == {"request_counts": {}, "requests": []}


def test_port_in_use_fails_to_start(llm: LLMTestServer) -> None:
    with pytest.raises(RuntimeError, match="could not listen"):
        LLMTestServer(port=llm.port).start()


def test_runs_as_a_separate_process(tmp_path: Path) -> None:
    config_file = tmp_path / "llm.json"
    config_file.write_text(json.dumps({"rules": [{"pattern": "ping", "content": "pong"}]}))
    command = [sys.executable, "-m", "tests.llm_server", "--port", "0", "--model", "tiny"]
    command += ["--api-key", "sk-proc", "--config", str(config_file)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        remote = openai.OpenAI(base_url=base_url, api_key="sk-proc", max_retries=0, timeout=5.0)
        assert [model.id for model in remote.models.list()] == ["tiny"]
        assert ask(remote, "ping", model="tiny").choices[0].message.content == "pong"

        root_url = base_url.removesuffix("/v1")
        httpx.post(f"{root_url}/admin/config", json={"faults": {"fail_next": 1, "error_status": 503}})
        with pytest.raises(openai.InternalServerError):
            ask(remote, "ping", model="tiny")
        assert httpx.get(f"{root_url}/admin/requests").json()["request_counts"] == {"tiny": 2}
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_a_quote_rule_answers_with_the_cited_first_sentence_of_an_excerpt(
    llm: LLMTestServer, client: openai.OpenAI
) -> None:
    llm.add_rule(pattern="refund", quote=2)
    llm.add_rule(pattern="missing", quote=7)
    prompt = (
        "Help-article excerpts:\n\n[1] Delivery › Times\nWe ship in 2 days. Express is faster.\n\n"
        "[2] Refunds › Timing\nRefunds take 5 working days.\nThey go to your card.\n\nQuestion: refund?"
    )
    assert ask(client, prompt).choices[0].message.content == "Refunds take 5 working days [2]."
    assert ask(client, prompt.replace("refund?", "missing?")).choices[0].message.content == "NO_ANSWER"
