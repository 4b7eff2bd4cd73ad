"""Slack: the Events API and interactivity (button clicks) on ``/webhooks/slack/webhook``.

Rasa's ``SlackInput`` does the protocol we keep: the request signature (HMAC-SHA256 of ``v0:<timestamp>:<body>``
with the app's signing secret, timestamps older than five minutes refused), which events are a user's
messages (not a bot's, direct messages and mentions), the bot mention removed from the text, button values,
and retries Slack sends after a timeout ignored. Its output channel posts with ``chat.postMessage`` in the
user's thread.

What this subclass adds:
- a bad or stale signature gets 401 with a JSON message (Rasa answers 400), before the body is parsed;
- malformed JSON or form bodies, unknown content types and oversized bodies get a 4xx (Rasa fails with a 500);
- the workspace (``team_id``) maps to one of our tenants (``workspaces`` in the credentials, from params.yaml
  ``channels.slack.workspaces``); another workspace gets 403;
- the sender is ``slack-<team>-<user>`` and the conversation ``<tenant>:slack-<team>-<user>``; the metadata
  carries tenant, user and correlation ids (``X-Request-Id`` from the gateway, else the event id);
- replies go through the one response model: text as mrkdwn sections, buttons as Block Kit ``actions``,
  sources as a ``context`` block, always in the thread of the user's message;
- the Web API URL is configurable (``api_url``), so tests post to a local stand-in.

The message is handled in the background after a 200, as Rasa does: Slack wants an answer within 3 seconds.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from rasa.core.channels.channel import UserMessage
from rasa.core.channels.slack import SlackBot, SlackInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.web.async_client import AsyncWebClient

from app.channels.common import (
    Handler,
    Inbound,
    VendorChannel,
    check_tenant_map,
    check_text,
    correlation_id,
    refusal,
    sender_id,
    tenant_of,
)
from app.channels.rendering import parse_reply, slack_message
from app.channels.turns import InvalidRequest

logger = structlog.get_logger(__name__)

SLACK_API_URL = "https://slack.com/api/"
SEND_TIMEOUT_S = 10


class SlackReplies(SlackBot):
    """Rasa's Slack output channel with every message rendered from the response model, in the thread."""

    def __init__(
        self, token: str, channel: str, thread_id: str | None, api_url: str, link_template: str | None
    ) -> None:
        super().__init__(token, channel, thread_id)
        self.client = AsyncWebClient(token=token, base_url=api_url, timeout=SEND_TIMEOUT_S)
        self.link_template = link_template

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        reply = parse_reply(message, self.link_template)
        if not reply.empty:
            await self._post_message(channel=self.slack_channel, **slack_message(reply))


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest(400, "malformed_json", f"The {what} is not valid JSON.") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest(400, "invalid_body", f"The {what} must be a JSON object.")
    return payload


class SlackChannel(VendorChannel, SlackInput):
    """Rasa's ``SlackInput`` with our checks, tenancy, identity and rendering (see the module docstring)."""

    @classmethod
    def name(cls) -> str:
        return "slack"

    def __init__(self, credentials: dict[str, Any]) -> None:
        SlackInput.__init__(
            self,
            credentials.get("slack_token") or "",
            slack_retry_reason_header="x-slack-retry-reason",
            slack_retry_number_header="x-slack-retry-num",
            slack_signing_secret=credentials.get("slack_signing_secret") or "",
            use_threads=True,
        )
        if not self.slack_token:
            raise ValueError("slack: no bot token (slack_token)")
        self._init_common(credentials)
        self.api_url = credentials.get("api_url") or SLACK_API_URL
        self.workspaces = check_tenant_map(credentials.get("workspaces"), "slack", "workspace")
        self._tasks: set[asyncio.Task] = set()

    def blueprint(self, on_new_message: Handler) -> Blueprint:
        hook = self.webhook_blueprint()

        @hook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            try:
                self.check_request(request)
                if not self.is_request_from_slack_authentic(request):
                    raise InvalidRequest(
                        401,
                        "invalid_signature",
                        "X-Slack-Signature does not match the body, or X-Slack-Request-Timestamp is more "
                        "than 5 minutes away.",
                    )
                kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
                if kind == "application/json":
                    payload = _json_object(request.body, "event")
                    if payload.get("type") == "url_verification":
                        return response.json({"challenge": str(payload.get("challenge") or "")})
                    inbound = self.from_event(payload, request.headers)
                elif kind == "application/x-www-form-urlencoded":
                    inbound = self.from_interaction(request)
                else:
                    raise InvalidRequest(
                        415, "unsupported_media_type", "Slack sends application/json or form bodies."
                    )
            except InvalidRequest as exc:
                return refusal(exc, self.name())
            if inbound is None:
                return response.json({"status": "ignored"})
            retry_reason = request.headers.get(self.retry_reason_header)
            if request.headers.get(self.retry_num_header) and retry_reason in self.errors_ignore_retry:
                logger.info("slack.retry.ignored", reason=retry_reason, correlation_id=inbound.correlation_id)
                return response.json({"status": "ignored"}, headers={"X-Slack-No-Retry": "1"})
            self.dispatch(inbound, on_new_message)
            return response.json({"status": "accepted"}, headers={"X-Request-Id": inbound.correlation_id})

        return hook

    def from_event(self, payload: dict[str, Any], headers: Any) -> Inbound | None:
        """An Events API callback as an :class:`Inbound`; None for events that are no user's message to
        the bot (a bot's own message, an edit, a channel message without a mention)."""
        if payload.get("type") != "event_callback":
            return None
        event = payload.get("event")
        if not isinstance(event, dict):
            raise InvalidRequest(400, "invalid_event", "An event_callback must carry an 'event' object.")
        tenant = tenant_of(payload.get("team_id"), self.workspaces, "workspace")
        if event.get("subtype") or not self._is_user_message(payload):
            return None
        if not (self._is_direct_message(payload) or self._is_app_mention(payload)):
            return None
        user, channel = event.get("user"), event.get("channel")
        if not isinstance(user, str) or not isinstance(channel, str):
            raise InvalidRequest(400, "invalid_event", "A message event must name its user and channel.")
        bot_users = payload.get("authed_users") or [
            a.get("user_id") for a in payload.get("authorizations") or [] if isinstance(a, dict)
        ]
        text = self._sanitize_user_message(str(event["text"]), [u for u in bot_users if isinstance(u, str)])
        if not text:  # a bare mention of the bot
            return None
        return Inbound(
            self.name(),
            tenant,
            sender_id(self.name(), str(payload["team_id"]), user),
            check_text(text, self.max_message_chars),
            correlation_id(headers, payload.get("event_id")),
            extra={"slack": {"channel": channel, "thread_ts": event.get("thread_ts") or event.get("ts")}},
        )

    def from_interaction(self, request: Request) -> Inbound | None:
        """A button click (an interactivity ``block_actions`` payload) as an :class:`Inbound` whose text is
        the button's value; None for other interactions."""
        raw = request.form.get("payload")
        if not isinstance(raw, str):
            raise InvalidRequest(400, "invalid_body", "An interaction must carry a 'payload' form field.")
        payload = _json_object(raw.encode(), "interaction payload")
        if payload.get("type") != "block_actions" or not self._is_interactive_message(payload):
            return None
        team = (payload.get("team") or {}).get("id") or (payload.get("user") or {}).get("team_id")
        tenant = tenant_of(team, self.workspaces, "workspace")
        value = self._get_interactive_response(payload["actions"][0])
        user = (payload.get("user") or {}).get("id")
        channel = (payload.get("channel") or {}).get("id")
        message = payload.get("message") or {}
        if value is None or not isinstance(user, str) or not isinstance(channel, str):
            return None
        return Inbound(
            self.name(),
            tenant,
            sender_id(self.name(), str(team), user),
            check_text(value, self.max_message_chars),
            correlation_id(request.headers, payload.get("trigger_id")),
            extra={"slack": {"channel": channel, "thread_ts": message.get("thread_ts") or message.get("ts")}},
        )

    def dispatch(self, inbound: Inbound, on_new_message: Handler) -> None:
        """Hand the message to Rasa in the background (Slack has had its 200), replies in the thread."""
        address = inbound.extra["slack"]
        output = SlackReplies(
            self.slack_token,
            address["channel"],
            address.get("thread_ts"),
            self.api_url,
            self.link_templates.get(inbound.tenant),
        )
        message = inbound.user_message(output)

        async def handle(message: UserMessage) -> None:
            try:
                await on_new_message(message)
            except Exception:  # the request was answered already: the log is where a failure shows
                logger.exception("slack.message.failure", correlation_id=inbound.correlation_id)

        task = asyncio.create_task(handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
