"""The REST channel end users talk to: Rasa's ``rest`` webhook with input validation and tenancy.

Registered in ``nlu/credentials.yml``; served at ``/webhooks/rest/webhook``. Runs inside the Rasa server
(Python 3.10, pydantic 1), so it imports only Rasa, Sanic, PyYAML, the stdlib, `app.channels.turns` (the turn
checks it shares with the gateway), `app.identity` (the conversation id) and `app.channels.settings` (its
settings reader), all stdlib only.

What it adds to Rasa's ``RestInput``:
- bad input gets a clear JSON error instead of a 500: malformed JSON or a missing/invalid ``sender`` or
  ``message`` -> 400; a message longer than ``SWITCHBOARD_MAX_MESSAGE_CHARS`` -> 413;
- the tenant (header ``X-Tenant-Id``, default ``SWITCHBOARD_TENANT``) becomes part of the conversation id
  (``<tenant>:<sender>``), so every tracker row carries tenant and user ids;
- a correlation id (header ``X-Request-Id`` or a new UUID) travels in the message metadata to the actions
  and comes back as a response header;
- its OpenAPI description (``app/channels/openapi.yaml``, written by hand: Sanic publishes none) at
  ``GET /webhooks/rest/openapi.json``.
- with ``SWITCHBOARD_CHANNEL_SECRET`` set, a turn without that secret in ``X-Channel-Secret`` gets 401: the
  channel trusts ``X-Tenant-Id``, so beyond loopback only the gateway (which sends the secret) may call it;
- a custom action that cannot run is answered at the static level, and a turn the tracker store cannot load
  or save gets 503 ``store_unavailable`` instead of being answered and lost (``app/channels/degraded.py``).
"""

from __future__ import annotations

import uuid
from asyncio import CancelledError
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
import yaml
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from app.channels import degraded, settings
from app.channels.turns import CHANNEL_SECRET_HEADER, InvalidRequest, check_channel_secret, check_turn
from app.identity import TENANT_PATTERN, conversation_id

logger = structlog.get_logger(__name__)

OPENAPI_FILE = Path(__file__).with_name("openapi.yaml")
STORE_UNAVAILABLE = (
    "The bot can't reach its conversation store right now. Please send your message again shortly."
)
RETRY_AFTER_S = 5


def parse_payload(
    body: bytes, headers: dict[str, str], max_message_chars: int, default_tenant: str
) -> dict[str, Any]:
    """Validate a webhook request and return sender, text, tenant, correlation id and metadata.

    Raises ``InvalidRequest`` with a 4xx status for anything the bot should not process.
    """
    payload = check_turn(body, max_message_chars)
    sender, text = payload["sender"], payload["message"]
    metadata = payload.get("metadata") or {}  # an object or null (check_turn)

    lowered = {k.lower(): v for k, v in headers.items()}
    tenant = lowered.get("x-tenant-id")
    if tenant is None:  # absent: the default tenant; present, even empty, it must be a tenant id
        tenant = default_tenant
    if not TENANT_PATTERN.match(tenant):
        raise InvalidRequest(400, "invalid_tenant", "X-Tenant-Id must be 1-64 of a-z, 0-9, '_' or '-'.")
    correlation_id = lowered.get("x-request-id") or uuid.uuid4().hex
    metadata = {**metadata, "tenant_id": tenant, "user_id": sender, "correlation_id": correlation_id}
    return {"sender": sender, "text": text, "tenant": tenant, "metadata": metadata}


class SwitchboardRestInput(RestInput):
    """Rasa's REST channel with validation, tenancy and correlation ids (see the module docstring)."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> SwitchboardRestInput:
        return cls(**(credentials or {}))

    def __init__(self, max_message_chars: int | None = None, default_tenant: str | None = None) -> None:
        self.max_message_chars = int(max_message_chars or settings.max_message_chars())
        self.default_tenant = default_tenant or settings.default_tenant()
        self.secret = settings.channel_secret()
        degraded.install()  # a custom action that cannot run is answered at the static level, not in silence

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint(f"custom_webhook_{type(self).__name__}", __name__)
        description = yaml.safe_load(OPENAPI_FILE.read_text(encoding="utf-8"))

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/openapi.json", methods=["GET"])
        async def openapi(request: Request) -> HTTPResponse:
            return response.json(description)

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                check_channel_secret(request.headers.get(CHANNEL_SECRET_HEADER), self.secret)
                turn = parse_payload(
                    request.body, dict(request.headers), self.max_message_chars, self.default_tenant
                )
            except InvalidRequest as exc:
                logger.info("rest.request.rejected", code=exc.code, status=exc.status)
                return response.json({"error": exc.code, "message": exc.message}, status=exc.status)

            collector = CollectingOutputChannel()
            message = UserMessage(
                turn["text"],
                collector,
                conversation_id(turn["tenant"], turn["sender"]),
                input_channel=self.name(),
                metadata=turn["metadata"],
            )
            headers = {"X-Request-Id": turn["metadata"]["correlation_id"]}
            try:
                await on_new_message(message)
            except CancelledError:
                logger.error("rest.message.timeout", correlation_id=headers["X-Request-Id"])
                return response.json(
                    {"error": "timeout", "message": "The bot took too long to answer."},
                    status=504,
                    headers=headers,
                )
            except degraded.StoreUnavailable:  # refused, not lost: the client sends it again
                return response.json(
                    {"error": "store_unavailable", "message": STORE_UNAVAILABLE},
                    status=503,
                    headers={**headers, "Retry-After": str(RETRY_AFTER_S)},
                )
            except Exception:
                logger.exception("rest.message.failure", correlation_id=headers["X-Request-Id"])
                return response.json(
                    {"error": "internal_error", "message": "The bot failed to process the message."},
                    status=500,
                    headers=headers,
                )
            return response.json(collector.messages, headers=headers)

        return webhook
