"""SMS through Twilio Programmable Messaging: incoming messages on ``/webhooks/twilio/webhook``.

Rasa's ``TwilioInput`` reads the message and answers through Twilio's REST API (its ``TwilioOutput``, the
``twilio`` client). This subclass adds the signature, account and number checks of
:mod:`app.channels.twilio`, tenancy by the number the user texted (``numbers``, from params.yaml
``channels.sms.numbers``), the sender ``sms-<digits>``, and replies rendered for SMS from the one response
model: plain text (no Markdown), the sources with their links, buttons as numbered options, each message at
most one SMS segment (160 GSM-7 characters, 70 when a character needs UCS-2), sent from the number the user
texted. A user answers options with their number (or title): the channel maps it to the button's payload
from the options the bot offered last. Replies are sent with the client's asynchronous HTTP client (Rasa's
blocks the event loop) to ``api_url``, configurable so tests use a local stand-in. Twilio gets an empty TwiML
``<Response/>``: the replies went out over the REST API.
"""

from __future__ import annotations

from typing import Any

import structlog
from rasa.core.channels.twilio import TwilioInput, TwilioOutput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient

from app.channels.common import Handler, Inbound, check_text, correlation_id, refusal
from app.channels.rendering import parse_reply, sms_messages
from app.channels.turns import InvalidRequest
from app.channels.twilio import TwilioChecks

logger = structlog.get_logger(__name__)

TWILIO_API_URL = "https://api.twilio.com"
SEND_TIMEOUT_S = 10
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_MEDIA = 10  # Twilio sends at most 10 media per MMS


class SmsReplies(TwilioOutput):
    """Rasa's Twilio output channel: each reply rendered for SMS and sent from the user's number of ours."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        ours: str,
        caller: str,
        api_url: str,
        link_template: str | None,
    ) -> None:
        super().__init__(account_sid, auth_token, ours)
        self.http_client = AsyncTwilioHttpClient(pool_connections=False, timeout=SEND_TIMEOUT_S)
        self.api.base_url = api_url
        self.caller, self.link_template = caller, link_template

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        for body in sms_messages(parse_reply(message, self.link_template)):
            try:
                await self.messages.create_async(to=self.caller, from_=self.twilio_number, body=body)
            except (TwilioException, OSError) as exc:  # logged; the turn itself is kept
                logger.error("sms.reply.failed", error=repr(exc)[:300])


class SmsChannel(TwilioChecks, TwilioInput):
    """Rasa's ``TwilioInput`` with signature, tenancy, identity and SMS rendering (module docstring)."""

    @classmethod
    def name(cls) -> str:
        return "twilio"

    def __init__(self, credentials: dict[str, Any]) -> None:
        TwilioInput.__init__(
            self, credentials.get("account_sid"), credentials.get("auth_token"), None, debug_mode=False
        )
        self._init_twilio(credentials, self.name())
        self.api_url = credentials.get("api_url") or TWILIO_API_URL

    def inbound(self, request: Request) -> Inbound:
        form, tenant, sender = self.check_twilio(request, "sms")
        count = form.value("NumMedia") or "0"
        attachments = tuple(
            {"url": form.value(f"MediaUrl{i}"), "content_type": form.value(f"MediaContentType{i}")}
            for i in range(min(int(count) if count.isdigit() else 0, MAX_MEDIA))
            if form.value(f"MediaUrl{i}")
        )
        text = check_text(form.value("Body"), self.max_message_chars, allow_empty=bool(attachments))
        if not text:
            raise InvalidRequest(400, "invalid_message", "Pictures alone are not understood: please write.")
        return Inbound(
            self.name(),
            tenant,
            sender,
            text,
            correlation_id(request.headers, form.value("MessageSid")),
            attachments,
            extra={"twilio": {"to": form.value("To"), "from": form.value("From")}},
        )

    def blueprint(self, on_new_message: Handler) -> Blueprint:
        hook = self.webhook_blueprint()

        @hook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            try:
                inbound = self.inbound(request)
            except InvalidRequest as exc:
                return refusal(exc, self.name())
            inbound = await self.answer_to_options(request, inbound)
            address = inbound.extra["twilio"]
            output = SmsReplies(
                self.account_sid,
                self.auth_token,
                address["to"],
                address["from"],
                self.api_url,
                self.link_templates.get(inbound.tenant),
            )
            failed = await self.handle(inbound, output, on_new_message)
            if failed:
                return failed
            return response.text(
                EMPTY_TWIML, content_type="text/xml", headers={"X-Request-Id": inbound.correlation_id}
            )

        return hook
