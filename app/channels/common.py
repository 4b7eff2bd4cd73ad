"""What every vendor channel (Slack, Teams, SMS, voice) does the same way, inside the Rasa server.

Each channel verifies its vendor's signature, then normalises the request into an :class:`Inbound`: the
tenant (the vendor's workspace, Microsoft tenant or phone number, mapped in params.yaml ``channels``), a
sender id stable per person (``slack-<team>-<user>``, ``teams-<Entra object id>``, ``sms-<digits>``,
``voice-<digits>``), the text, attachments, the channel name and a correlation id. The conversation id is
``<tenant>:<sender>`` as on the REST channel (:mod:`app.identity`), and the message metadata carries
``tenant_id``, ``user_id`` and ``correlation_id`` as the REST channel's does, so actions, turn records,
analytics and per-user erasure treat every channel alike.

A refused request gets a 4xx with ``{"error", "message"}`` (:class:`~app.channels.turns.InvalidRequest`) and
never reaches Rasa's agent, so nothing is stored. Replies are rendered from one model
(:mod:`app.channels.rendering`).

Runs inside the Rasa server (Python 3.10): Rasa, Sanic and the standard library only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from app.channels import settings
from app.channels.rendering import Button, choose_option, offered_buttons
from app.channels.turns import CHANNEL_SECRET_HEADER, REQUEST_ID_PATTERN, InvalidRequest, check_channel_secret
from app.identity import ID_PATTERN, TENANT_PATTERN, conversation_id

logger = structlog.get_logger(__name__)

Handler = Callable[[UserMessage], Awaitable[Any]]

_NOT_IN_IDS = re.compile(r"[^A-Za-z0-9_.@-]+")


@dataclass(frozen=True)
class Inbound:
    """One user message from a vendor channel, normalised (see the module docstring)."""

    channel: str
    tenant: str
    sender: str
    text: str
    correlation_id: str
    attachments: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # vendor addressing kept in the tracker (thread...)

    @property
    def conversation_id(self) -> str:
        return conversation_id(self.tenant, self.sender)

    def metadata(self) -> dict[str, Any]:
        """The message metadata: the channel's extras, then the ids every consumer reads (never overridable
        by the vendor's payload)."""
        metadata = dict(self.extra)
        if self.attachments:
            metadata["attachments"] = list(self.attachments)
        metadata.update(tenant_id=self.tenant, user_id=self.sender, correlation_id=self.correlation_id)
        return metadata

    def user_message(self, output: OutputChannel) -> UserMessage:
        return UserMessage(
            self.text,
            output,
            self.conversation_id,
            input_channel=self.channel,
            metadata=self.metadata(),
        )


def sender_id(channel: str, *parts: str) -> str:
    """Our user id for a vendor's user: ``<channel>-<part>-<part>``, characters outside the id alphabet
    replaced by ``.``; ``InvalidRequest`` 400 when no valid id results."""
    cleaned = [_NOT_IN_IDS.sub(".", p.strip()).strip(".") for p in parts]
    sender = "-".join([channel, *cleaned])
    if not all(cleaned) or not ID_PATTERN.match(sender):
        raise InvalidRequest(400, "invalid_sender", f"The {channel} request does not name a usable sender.")
    return sender


def correlation_id(headers: Mapping[str, str], vendor_id: str | None) -> str:
    """The gateway's ``X-Request-Id`` when it is a plain id, else the vendor's id of the event (when plain),
    else a new one."""
    for candidate in (headers.get("x-request-id") or "", vendor_id or ""):
        if REQUEST_ID_PATTERN.match(candidate):
            return candidate
    return uuid.uuid4().hex


def check_text(text: Any, max_chars: int, *, allow_empty: bool = False) -> str:
    """The user's text if usable; ``InvalidRequest`` 400 (not text, or empty) or 413 (too long)."""
    if text is None and allow_empty:
        return ""
    if not isinstance(text, str) or (not text.strip() and not allow_empty):
        raise InvalidRequest(400, "invalid_message", "The request carries no message text.")
    if len(text) > max_chars:
        raise InvalidRequest(413, "message_too_long", f"The message is longer than {max_chars} characters.")
    return text.strip()


def tenant_of(key: Any, tenants: Mapping[str, str], what: str) -> str:
    """The tenant ``key`` (a workspace, a Microsoft tenant, a phone number) belongs to; ``InvalidRequest``
    403 when it belongs to none."""
    tenant = tenants.get(key) if isinstance(key, str) else None
    if not tenant:
        raise InvalidRequest(403, f"unknown_{what}", f"This {what} is not connected to any tenant.")
    return tenant


def check_tenant_map(tenants: Mapping[str, Any] | None, channel: str, what: str) -> dict[str, str]:
    """A channel's ``<vendor id> -> tenant`` map from its credentials, checked at start-up (``ValueError``
    naming the bad entry: Rasa then refuses to start, with the message)."""
    checked: dict[str, str] = {}
    for key, tenant in (tenants or {}).items():
        if not isinstance(tenant, str) or not TENANT_PATTERN.match(tenant):
            raise ValueError(f"{channel}: {what} {key!r} maps to an invalid tenant id {tenant!r}")
        checked[str(key)] = tenant
    if not checked:
        raise ValueError(f"{channel}: no {what} is mapped to a tenant")
    return checked


def refusal(exc: InvalidRequest, channel: str) -> HTTPResponse:
    """A refused request's answer, logged: the status and ``{"error", "message"}``."""
    logger.info("channel.request.rejected", channel=channel, code=exc.code, status=exc.status)
    return response.json({"error": exc.code, "message": exc.message}, status=exc.status)


class VendorChannel(InputChannel):
    """Base of our vendor channels: the settings they share, refusals, and the options a user answers.

    ``self.link_templates`` is ``tenant -> source link template`` (params.yaml ``channels.source_links``).
    """

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> VendorChannel:
        if not credentials:
            cls.raise_missing_credentials_exception()
        return cls(credentials)  # type: ignore[call-arg]

    def _init_common(self, credentials: Mapping[str, Any]) -> None:
        self.channel_secret = settings.channel_secret()
        self.max_message_chars = settings.max_message_chars()
        self.max_body_bytes = int(credentials.get("max_body_bytes") or settings.DEFAULT_MAX_BODY_BYTES)
        self.link_templates: dict[str, str] = dict(credentials.get("source_links") or {})

    def check_request(self, request: Request) -> None:
        """The checks before any vendor-specific one: the gateway's channel secret (401), the body size
        (413)."""
        check_channel_secret(request.headers.get(CHANNEL_SECRET_HEADER), self.channel_secret)
        if len(request.body or b"") > self.max_body_bytes:
            raise InvalidRequest(
                413, "body_too_large", f"The request body is larger than {self.max_body_bytes} bytes."
            )

    def webhook_blueprint(self) -> Blueprint:
        """The channel's blueprint with its health route (``GET /webhooks/<name>/``); the channel adds its
        ``POST /webhook``."""
        hook = Blueprint(f"switchboard_{self.name()}_webhook", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        return hook

    async def handle(
        self, inbound: Inbound, output: OutputChannel, on_new_message: Handler
    ) -> HTTPResponse | None:
        """Hand the message to Rasa's agent; a JSON 500 when that fails (never an answer as if it worked),
        None when it went through."""
        try:
            await on_new_message(inbound.user_message(output))
        except Exception:
            logger.exception(
                "channel.message.failure", channel=inbound.channel, correlation_id=inbound.correlation_id
            )
            return response.json(
                {"error": "internal_error", "message": "The bot failed to process the message."},
                status=500,
                headers={"X-Request-Id": inbound.correlation_id},
            )
        return None

    async def tracker_events(self, request: Request, conversation: str) -> list[dict[str, Any]]:
        """The conversation's events as dicts (oldest first); empty for a new conversation."""
        tracker = await request.app.ctx.agent.tracker_store.retrieve(conversation)
        return [e.as_dict() for e in tracker.events] if tracker else []

    async def answer_to_options(self, request: Request, inbound: Inbound) -> Inbound:
        """``inbound`` with its text replaced by a button's payload when it picks one of the options the bot
        offered last (by number or title: SMS, voice); unchanged otherwise."""
        offered: tuple[Button, ...] = offered_buttons(
            await self.tracker_events(request, inbound.conversation_id)
        )
        chosen = choose_option(inbound.text, offered)
        if chosen is None:
            return inbound
        logger.info("channel.option_chosen", channel=inbound.channel, correlation_id=inbound.correlation_id)
        return Inbound(
            inbound.channel,
            inbound.tenant,
            inbound.sender,
            chosen.payload,
            inbound.correlation_id,
            inbound.attachments,
            {**inbound.extra, "answered": inbound.text},
        )

    async def handoff_active(self, request: Request, conversation: str) -> bool:
        """Whether the conversation is with a person now (slot ``handoff_active``, set by the handoff
        action)."""
        tracker = await request.app.ctx.agent.tracker_store.retrieve(conversation)
        return bool(tracker and tracker.get_slot("handoff_active"))
