"""A deterministic, OpenAI-compatible chat-completions server that stands in for a hosted LLM in tests.

Endpoints
    ``POST /v1/chat/completions``  OpenAI's request and response shapes. Invalid requests and ``stream=true``
                                   answer 400, a model missing from ``ServerConfig.models`` answers 404.
    ``GET  /v1/models``            the configured model names.
    ``GET  /health``               ``{"status": "ok"}``.
    ``GET  /admin/config``         the current :class:`ServerConfig` (fault counters show what is left).
    ``POST /admin/config``         a partial update, see :class:`ConfigUpdate`.
    ``POST /admin/rules``          append one :class:`ScriptRule`.
    ``POST /admin/reset``          back to the construction config; clears the request log and counters.
    ``GET  /admin/requests``       ``{"request_counts": {model: n}, "requests": [body, ...]}``.

Replies
    The first :class:`ScriptRule` (in order) that matches a request decides the reply; without one the reply
    is ``ServerConfig.default_reply`` formatted with the last user message, wrapped as ``{"answer": ...}`` in
    JSON mode. ``temperature`` has no effect: the same request always gets the same content. With ``n > 1``,
    choice ``k >= 1`` differs from choice 0: text gets the suffix ``" (variant k)"`` (which a token limit may
    cut off), a JSON object gets the key ``"variant": k`` and a tool call gets its own call id.

Tokens
    A token is a run of word characters or a single other non-space character (``TOKEN_PATTERN``).
    ``prompt_tokens`` counts the tokens of all message texts joined by newlines (tools and roles are not
    counted); ``completion_tokens`` sums the tokens of every choice's content (for a tool call: its name and
    JSON arguments). Content longer than ``max_completion_tokens`` (or ``max_tokens``) tokens is cut after the
    last allowed token and finishes with ``"length"``; tool calls are never cut.

Faults
    Chat-completion requests go through :class:`FaultConfig`: the global one, or the model's override from
    ``model_faults`` when the model has one (an override replaces the global settings for that model). See
    :meth:`ServerState.begin_request` for the order in which faults apply.

Authentication
    With ``ServerConfig.api_key`` set, the ``/v1`` endpoints answer 401 unless the request carries
    ``Authorization: Bearer <api_key>``. ``/health`` and ``/admin`` are always open.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
"""What the test server counts as one token: a run of word characters, or one other non-space character."""

MALFORMED_BODY = '{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"index": 0, "mess'
"""The body of an injected malformed response: served as ``application/json`` but not valid JSON."""

SYSTEM_FINGERPRINT = "fp_switchboard_test"

# Error ``type`` and ``code`` that OpenAI uses for the statuses a fault can inject.
_FAULT_ERROR_KINDS: dict[int, tuple[str, str]] = {
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}
# Statuses whose injected errors carry ``Retry-After`` (seconds) and ``retry-after-ms`` headers.
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def count_tokens(text: str) -> int:
    """Count the tokens of ``text`` as the test server does (see ``TOKEN_PATTERN``)."""
    return len(TOKEN_PATTERN.findall(text))


def truncate_tokens(text: str, limit: int) -> tuple[str, bool]:
    """Cut ``text`` right after its ``limit``-th token; return the text and whether anything was cut."""
    ends = [match.end() for match in TOKEN_PATTERN.finditer(text)]
    if len(ends) <= limit:
        return text, False
    return text[: ends[limit - 1]], True


# --------------------------------------------------------------------------------------------- configuration


class FaultConfig(BaseModel):
    """Faults injected into chat-completion requests, globally or for one model.

    Counters (``*_next``) are consumed one per request and are independent of each other; rates are applied
    deterministically: with rate ``r``, request ``k`` (counted from 1 since this fault scope was last changed)
    is hit when ``floor(k * r)`` grows, so ``r = 0.25`` hits every 4th request and ``r = 1`` hits every one.
    """

    model_config = ConfigDict(extra="forbid")

    latency_ms: int = Field(0, ge=0, description="Delay added to every request before it is answered.")
    error_status: int = Field(500, ge=400, le=599, description="HTTP status of injected errors.")
    retry_after_s: float = Field(1.0, ge=0, description="Retry-After of injected 429 and 503 errors.")
    fail_next: int = Field(0, ge=0, description="The next N requests answer an error_status error.")
    error_rate: float = Field(0.0, ge=0, le=1, description="Fraction of requests that answer an error.")
    hang_next: int = Field(0, ge=0, description="The next N requests wait hang_s before answering.")
    hang_s: float = Field(30.0, ge=0, description="How long a hanging request waits (then answers normally).")
    malformed_next: int = Field(0, ge=0, description="The next N requests get a body that is not valid JSON.")
    malformed_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of requests that get a malformed body."
    )


class ToolCallSpec(BaseModel):
    """A tool call that a script rule makes the assistant return."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptRule(BaseModel):
    """A scripted reply: when every given condition matches, answer with exactly one of the reply fields.

    Conditions: ``model`` (exact name), ``pattern`` (regex searched in the last user message),
    ``system_pattern`` (regex searched in the system and developer messages, joined by newlines) and
    ``tool_result_pattern`` (regex searched in the tool results sent after the last user message; a rule
    with it needs at least one). A rule with ``tool_call`` also requires the request to offer a function
    tool of that name that ``tool_choice`` allows, and no result of that tool after the last user message
    yet (a model calls a tool once per question, then answers from its result). Replies: ``content`` (sent as is, even in JSON mode: a way to test invalid model output),
    ``json_object`` (sent as JSON text) or ``tool_call``.
    """

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    pattern: str | None = None
    system_pattern: str | None = None
    tool_result_pattern: str | None = None
    content: str | None = None
    json_object: dict[str, Any] | None = None
    tool_call: ToolCallSpec | None = None
    quote: int | None = Field(default=None, ge=1)

    @field_validator("pattern", "system_pattern", "tool_result_pattern")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _check_one_reply(self) -> ScriptRule:
        replies = [self.content, self.json_object, self.tool_call, self.quote]
        if sum(reply is not None for reply in replies) != 1:
            raise ValueError("a rule needs exactly one of content, json_object, tool_call and quote")
        return self

    def matches(self, chat: ChatCompletionRequest) -> bool:
        """Whether this rule applies to ``chat``."""
        if self.model is not None and self.model != chat.model:
            return False
        if self.pattern is not None and not re.search(self.pattern, chat.last_user_text):
            return False
        if self.system_pattern is not None and not re.search(self.system_pattern, chat.system_text):
            return False
        if self.tool_result_pattern is not None and not any(
            re.search(self.tool_result_pattern, text) for text in chat.tool_results.values()
        ):
            return False
        if self.tool_call is None:
            return True
        return chat.allows_tool(self.tool_call.name) and self.tool_call.name not in chat.tool_results


class ServerConfig(BaseModel):
    """Everything that shapes the server's answers; changeable at runtime through :class:`ConfigUpdate`."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(default_factory=lambda: ["small", "large"], min_length=1)
    api_key: str | None = None
    default_reply: str = Field(
        "Echo: {prompt}",
        description="Reply when no rule matches; {prompt} is the last user message and {model} the model.",
    )
    rules: list[ScriptRule] = Field(default_factory=list)
    faults: FaultConfig = Field(default_factory=FaultConfig)
    model_faults: dict[str, FaultConfig] = Field(default_factory=dict)

    @field_validator("default_reply")
    @classmethod
    def _check_template(cls, value: str) -> str:
        try:
            value.format(prompt="", model="")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"default_reply may only use the fields {{prompt}} and {{model}}: {exc!r}"
            ) from exc
        return value


class ConfigUpdate(BaseModel):
    """A partial runtime update, the body of ``POST /admin/config``: only the fields given change.

    ``faults`` and each ``model_faults`` entry are merged field by field into the current settings (a model
    without an override starts from the defaults, not from the global faults); a ``null`` entry in
    ``model_faults`` removes that model's override. ``models``, ``api_key`` (``null`` turns the check off),
    ``default_reply`` and ``rules`` replace the current value.
    """

    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = None
    api_key: str | None = None
    default_reply: str | None = None
    rules: list[ScriptRule] | None = None
    faults: FaultConfig | None = None
    model_faults: dict[str, FaultConfig | None] | None = None


# ------------------------------------------------------------------------------------------------- requests


class ContentPart(BaseModel):
    """One part of a multi-part message content; only ``text`` parts carry text."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """A message of the conversation, as OpenAI accepts it."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    @property
    def text(self) -> str:
        """The message's text: its string content, or its text parts joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text or "" for part in self.content if part.type == "text")


class ResponseFormat(BaseModel):
    """``response_format``: ``json_object`` and ``json_schema`` both switch JSON mode on."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]


class FunctionName(BaseModel):
    """The function part of a tool definition or of a named ``tool_choice``."""

    model_config = ConfigDict(extra="allow")

    name: str


class Tool(BaseModel):
    """A function tool offered to the model."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionName


class NamedToolChoice(BaseModel):
    """``tool_choice`` that forces one function."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionName


class ChatCompletionRequest(BaseModel):
    """The part of OpenAI's chat-completion request that the test server understands; other keys are kept."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = Field(1, ge=1, le=8)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    stream: bool | None = False

    @property
    def last_user_text(self) -> str:
        """Text of the last user message ("" if there is none)."""
        return next((message.text for message in reversed(self.messages) if message.role == "user"), "")

    @property
    def system_text(self) -> str:
        """Texts of the system and developer messages, joined by newlines."""
        return "\n".join(message.text for message in self.messages if message.role in ("system", "developer"))

    @property
    def prompt_text(self) -> str:
        """Texts of all messages joined by newlines: what ``prompt_tokens`` counts."""
        return "\n".join(message.text for message in self.messages)

    @property
    def json_mode(self) -> bool:
        """Whether the request asks for a JSON reply."""
        return self.response_format is not None and self.response_format.type != "text"

    @property
    def token_limit(self) -> int | None:
        """``max_completion_tokens``, else ``max_tokens``, else None."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def tool_results(self) -> dict[str, str]:
        """``{tool name: result text}`` of the tool messages after the last user message (the name comes
        from the assistant's tool call with the same id)."""
        last_user = max((i for i, m in enumerate(self.messages) if m.role == "user"), default=-1)
        names: dict[str, str] = {}
        results: dict[str, str] = {}
        for message in self.messages[last_user + 1 :]:
            for call in getattr(message, "tool_calls", None) or []:
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    names[str(call.get("id"))] = str(call["function"].get("name"))
            if message.role == "tool":
                call_id = str(getattr(message, "tool_call_id", ""))
                results[names.get(call_id, call_id)] = message.text
        return results

    def allows_tool(self, name: str) -> bool:
        """Whether the request offers the function ``name`` and ``tool_choice`` lets the model call it."""
        if name not in {tool.function.name for tool in self.tools or []} or self.tool_choice == "none":
            return False
        return not isinstance(self.tool_choice, NamedToolChoice) or self.tool_choice.function.name == name


# ---------------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one request: how long to wait first, then an error, a malformed body or an answer."""

    delay_s: float = 0.0
    error_status: int | None = None
    retry_after_s: float = 0.0
    malformed: bool = False


def _rate_hit(rate: float, k: int) -> bool:
    """Whether request ``k`` (from 1) is hit by a fault of this rate: when ``floor(k * rate)`` grows."""
    # The epsilon keeps products such as 0.29 * 100 = 28.999999999999996 on the intended side.
    return math.floor(k * rate + 1e-9) > math.floor((k - 1) * rate + 1e-9)


class ServerState:
    """The server's mutable state, shared by the request handlers and the Python or HTTP controls.

    Thread-safe: the app runs on uvicorn's event-loop thread while tests change it from theirs.
    """

    def __init__(self, config: ServerConfig) -> None:
        self._initial = config.model_copy(deep=True)
        self._lock = threading.Lock()
        self._config = config.model_copy(deep=True)
        self._requests: list[Any] = []
        self._request_counts: dict[str, int] = {}
        self._scope_seen: dict[str | None, int] = {}
        self._sequence = 0
        self._wakeup: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    @property
    def config(self) -> ServerConfig:
        """A copy of the current configuration."""
        with self._lock:
            return self._config.model_copy(deep=True)

    @property
    def live_config(self) -> ServerConfig:
        """The current configuration object itself, not a copy: read it, never change it.

        Reading it without the lock is safe: changes replace the whole object, except the fault counters,
        which only :meth:`begin_request` changes (under the lock).
        """
        return self._config

    @property
    def requests(self) -> list[Any]:
        """The JSON bodies of the chat-completion requests received so far (authorized ones), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_counts(self) -> dict[str, int]:
        """Number of valid chat-completion requests per model, including those answered by a fault."""
        with self._lock:
            return dict(self._request_counts)

    def update(self, update: ConfigUpdate) -> ServerConfig:
        """Apply a partial update (see :class:`ConfigUpdate`) and return the new configuration.

        Raises ``pydantic.ValidationError`` (and changes nothing) if the result is not a valid configuration.
        """
        with self._lock:
            data = self._config.model_dump()
            for name in update.model_fields_set & {"models", "api_key", "default_reply", "rules"}:
                data[name] = update.model_dump(include={name})[name]
            changed_scopes: set[str | None] = set()
            if update.faults is not None:
                data["faults"] = _merge_faults(self._config.faults, update.faults)
                changed_scopes.add(None)
            for model, faults in (update.model_faults or {}).items():
                if faults is None:
                    data["model_faults"].pop(model, None)
                else:
                    base = self._config.model_faults.get(model, FaultConfig())
                    data["model_faults"][model] = _merge_faults(base, faults)
                changed_scopes.add(model)
            self._config = ServerConfig.model_validate(data)
            for scope in changed_scopes:
                self._scope_seen.pop(scope, None)
            return self._config.model_copy(deep=True)

    def add_rule(self, rule: ScriptRule) -> None:
        """Append a script rule (rules are tried in order)."""
        with self._lock:
            rules = [*self._config.rules, rule.model_copy(deep=True)]
            self._config = self._config.model_copy(update={"rules": rules})

    def reset(self) -> None:
        """Restore the construction configuration and clear the request log, counters and fault progress."""
        with self._lock:
            self._config = self._initial.model_copy(deep=True)
            self._requests.clear()
            self._request_counts.clear()
            self._scope_seen.clear()
            self._sequence = 0

    def record(self, body: Any) -> None:
        """Log the JSON body of a received chat-completion request."""
        with self._lock:
            self._requests.append(body)

    def begin_request(self, model: str) -> tuple[ServerConfig, FaultPlan, int]:
        """Count a valid request for ``model``; return the config to answer with (read-only), its faults and a
        sequence number.

        The request first waits ``latency_ms`` (plus ``hang_s`` if ``hang_next`` is left), then answers an
        error if ``fail_next`` is left or ``error_rate`` hits, else a malformed body if ``malformed_next`` is
        left or ``malformed_rate`` hits, else the normal answer. Every ``*_next`` counter that is left is
        consumed, even when an earlier fault already decides the outcome.
        """
        with self._lock:
            self._request_counts[model] = self._request_counts.get(model, 0) + 1
            self._sequence += 1
            scope = model if model in self._config.model_faults else None
            faults = self._config.model_faults[model] if scope is not None else self._config.faults
            seen = self._scope_seen[scope] = self._scope_seen.get(scope, 0) + 1

            hang = _consume(faults, "hang_next")
            fail = _consume(faults, "fail_next") or _rate_hit(faults.error_rate, seen)
            malformed = _consume(faults, "malformed_next") or _rate_hit(faults.malformed_rate, seen)
            plan = FaultPlan(
                delay_s=faults.latency_ms / 1000 + (faults.hang_s if hang else 0.0),
                error_status=faults.error_status if fail else None,
                retry_after_s=faults.retry_after_s,
                malformed=malformed and not fail,
            )
            return self._config, plan, self._sequence

    async def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless :meth:`interrupt_pauses` comes first; return whether it slept them all."""
        with self._lock:
            if self._wakeup is None:
                self._wakeup = (asyncio.get_running_loop(), asyncio.Event())
            event = self._wakeup[1]
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    def interrupt_pauses(self) -> None:
        """End every current :meth:`pause` early (thread-safe); used when the server stops."""
        with self._lock:
            wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and not wakeup[0].is_closed():
            wakeup[0].call_soon_threadsafe(wakeup[1].set)


def _merge_faults(base: FaultConfig, patch: FaultConfig) -> dict[str, Any]:
    """``base`` with the fields explicitly set in ``patch`` replaced, as a dict."""
    return {**base.model_dump(), **patch.model_dump(include=patch.model_fields_set)}


def _consume(faults: FaultConfig, counter: Literal["fail_next", "hang_next", "malformed_next"]) -> bool:
    """Take one from a ``*_next`` counter; return whether there was one left."""
    left = getattr(faults, counter)
    if left > 0:
        setattr(faults, counter, left - 1)
    return left > 0


# -------------------------------------------------------------------------------------------------- replies


def openai_error(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error response in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _injected_error(plan: FaultPlan) -> JSONResponse:
    """The error response of an injected fault."""
    status = plan.error_status or 500
    default_kind = (
        ("server_error", "server_error") if status >= 500 else ("invalid_request_error", "injected_fault")
    )
    error_type, code = _FAULT_ERROR_KINDS.get(status, default_kind)
    headers = None
    if status in _RETRY_AFTER_STATUSES:
        headers = {
            "Retry-After": str(math.ceil(plan.retry_after_s)),
            "retry-after-ms": str(round(plan.retry_after_s * 1000)),
        }
    message = f"Injected fault: HTTP {status} from the Switchboard test LLM server."
    return openai_error(status, message, error_type=error_type, code=code, headers=headers)


def _variant_text(text: str, index: int) -> str:
    """Choice ``index``'s version of a text reply."""
    return text if index == 0 else f"{text} (variant {index})"


def _reply_content(
    chat: ChatCompletionRequest, config: ServerConfig, rule: ScriptRule | None, index: int
) -> str:
    """The (untruncated) text content of choice ``index`` when no tool call is made."""
    if rule is not None and rule.content is not None:
        return _variant_text(rule.content, index)
    if rule is not None and rule.quote is not None:
        return _variant_text(quote_excerpt(chat.last_user_text, rule.quote), index)
    if rule is not None and rule.json_object is not None:
        payload: dict[str, Any] | str = rule.json_object
    else:
        text = config.default_reply.format(prompt=chat.last_user_text, model=chat.model)
        payload = {"answer": text} if chat.json_mode else text
    if isinstance(payload, str):
        return _variant_text(payload, index)
    if index:
        payload = {**payload, "variant": index}
    return json.dumps(payload, ensure_ascii=False)


def quote_excerpt(prompt: str, number: int) -> str:
    """A grounded, cited answer as a careful model gives it: the first sentence (of 4 words or more) of excerpt
    ``number`` of a prompt laid out as ``[n] <source>`` then the excerpt's text, followed by ``[n]``;
    ``NO_ANSWER`` when the prompt has no such excerpt."""
    match = re.search(rf"^\[{number}\] [^\n]*\n(.+?)(?:\n\s*\n|\Z)", prompt, re.MULTILINE | re.DOTALL)
    if match is None:
        return "NO_ANSWER"
    text = " ".join(match.group(1).split())
    sentences = [part for part in re.split(r"(?<=[.!?])\s+", text) if len(part.split()) >= 4]  # not "1."
    sentence = sentences[0] if sentences else text
    return f"{sentence.rstrip('.')} [{number}]."


def _tool_call(spec: ToolCallSpec, sequence: int, index: int) -> dict[str, Any]:
    """A tool call in OpenAI's message shape; its id is unique per request and choice."""
    return {
        "id": f"call_{sequence}_{index}",
        "type": "function",
        "function": {"name": spec.name, "arguments": json.dumps(spec.arguments, sort_keys=True)},
    }


def _choice(
    chat: ChatCompletionRequest, config: ServerConfig, rule: ScriptRule | None, sequence: int, index: int
) -> tuple[dict[str, Any], int]:
    """Choice ``index`` of the answer and its completion token count."""
    if rule is not None and rule.tool_call is not None:
        call = _tool_call(rule.tool_call, sequence, index)
        message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}
        choice = {"index": index, "message": message, "finish_reason": "tool_calls", "logprobs": None}
        return choice, count_tokens(call["function"]["name"]) + count_tokens(call["function"]["arguments"])
    content = _reply_content(chat, config, rule, index)
    truncated = False
    if chat.token_limit is not None:
        content, truncated = truncate_tokens(content, chat.token_limit)
    message = {"role": "assistant", "content": content, "refusal": None}
    finish_reason = "length" if truncated else "stop"
    choice = {"index": index, "message": message, "finish_reason": finish_reason, "logprobs": None}
    return choice, count_tokens(content)


def build_completion(chat: ChatCompletionRequest, config: ServerConfig, sequence: int) -> dict[str, Any]:
    """The ``chat.completion`` object answering ``chat`` (``sequence`` numbers the request in the server)."""
    rule = next((rule for rule in config.rules if rule.matches(chat)), None)
    choices = [_choice(chat, config, rule, sequence, index) for index in range(chat.n)]
    prompt_tokens = count_tokens(chat.prompt_text)
    completion_tokens = sum(tokens for _, tokens in choices)
    return {
        "id": f"chatcmpl-test-{sequence}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [choice for choice, _ in choices],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


# ------------------------------------------------------------------------------------------------------ app


def _unauthorized(request: Request, config: ServerConfig) -> JSONResponse | None:
    """A 401 response if an API key is configured and the request does not carry it, else None."""
    if config.api_key is None or request.headers.get("authorization") == f"Bearer {config.api_key}":
        return None
    return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    """A one-line message and the offending top-level parameter for a request validation error."""
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    param = str(error["loc"][0]) if error["loc"] else None
    return f"Invalid request: {location}: {error['msg']}", param


def _admin_validation_error(exc: ValidationError) -> JSONResponse:
    """A FastAPI-style 422 response for an invalid admin update."""
    return JSONResponse({"detail": exc.errors(include_url=False, include_context=False)}, status_code=422)


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """Build the test server's app; its :class:`ServerState` is ``app.state.llm``."""
    state = ServerState(config or ServerConfig())
    app = FastAPI(title="Switchboard test LLM server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.llm = state

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Unknown paths and methods answer in OpenAI's error shape too."""
        return openai_error(exc.status_code, str(exc.detail), code=f"http_{exc.status_code}")

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    @app.get("/v1/models", response_model=None)
    async def list_models(request: Request) -> JSONResponse | dict[str, Any]:
        """The configured models, in OpenAI's list shape."""
        current = state.live_config
        if (denied := _unauthorized(request, current)) is not None:
            return denied
        models = [
            {"id": name, "object": "model", "created": 0, "owned_by": "switchboard-test"}
            for name in current.models
        ]
        return {"object": "list", "data": models}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        """Answer a chat-completion request, after the faults configured for its model."""
        if (denied := _unauthorized(request, state.live_config)) is not None:
            return denied
        try:
            body = await request.json()
        except ValueError:
            return openai_error(400, "We could not parse the JSON body of your request.", code="invalid_json")
        state.record(body)
        try:
            chat = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            message, param = _validation_message(exc)
            return openai_error(400, message, param=param, code="invalid_value")
        if chat.stream:
            message = "stream=true is not supported by the Switchboard test LLM server."
            return openai_error(400, message, param="stream", code="unsupported_parameter")
        models = state.live_config.models
        if chat.model not in models:
            message = f"The model `{chat.model}` does not exist (configured: {', '.join(models)})."
            return openai_error(404, message, param="model", code="model_not_found")

        current, plan, sequence = state.begin_request(chat.model)
        if plan.delay_s and not await state.pause(plan.delay_s):
            message = "The Switchboard test LLM server is shutting down."
            return openai_error(503, message, error_type="server_error", code="shutting_down")
        if plan.error_status is not None:
            return _injected_error(plan)
        if plan.malformed:
            return Response(MALFORMED_BODY, media_type="application/json")
        return JSONResponse(build_completion(chat, current, sequence))

    @app.get("/admin/config")
    async def get_config() -> dict[str, Any]:
        """The current configuration."""
        return state.config.model_dump()

    @app.post("/admin/config", response_model=None)
    async def update_config(update: ConfigUpdate) -> JSONResponse | dict[str, Any]:
        """Apply a partial update; answer the new configuration (422 and no change if it is invalid)."""
        try:
            return state.update(update).model_dump()
        except ValidationError as exc:
            return _admin_validation_error(exc)

    @app.post("/admin/rules")
    async def add_rule(rule: ScriptRule) -> dict[str, Any]:
        """Append a script rule; answer the new configuration."""
        state.add_rule(rule)
        return state.config.model_dump()

    @app.post("/admin/reset")
    async def reset() -> dict[str, Any]:
        """Restore the construction configuration; answer it."""
        state.reset()
        return state.config.model_dump()

    @app.get("/admin/requests")
    async def received_requests() -> dict[str, Any]:
        """The request counts per model and the logged request bodies."""
        return {"request_counts": state.request_counts, "requests": state.requests}

    return app
