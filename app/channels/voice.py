"""Phone calls through Twilio Voice: Twilio recognises speech and speaks our replies (TwiML) on
``/webhooks/twilio_voice/webhook``.

Rasa's ``TwilioVoiceInput`` does the protocol we keep: the call starts with its ``initial_prompt`` as the
caller's first message, each reply is spoken with ``<Say>`` and the caller's answer gathered with
``<Gather input="speech">`` (its voice, speech model and timeout settings, validated as Rasa does). It checks
no signature, cannot transfer a call, and re-prompts from the tracker of the raw caller number, while our
conversations are ``<tenant>:voice-<digits>``. This subclass adds:

- the signature, account and number checks of :mod:`app.channels.twilio` (403), tenancy by the number
  called (``numbers``, from params.yaml ``channels.voice.numbers``) and the sender ``voice-<digits>``;
- replies spoken from the one response model: short sentences (``max_spoken_chars``), no URLs or Markdown,
  order ids and long numbers read character by character, dates as dates, the source's title, and options
  as "say or press 1 for ..." (the caller's spoken or keyed number, or the option's title, picks it);
- barge-in: every ``<Say>`` is inside the ``<Gather>``, so the caller may speak over the bot;
- silence: Twilio calls back with no speech; the caller hears the re-prompt and the bot's last messages
  again (from the tracker of ``<tenant>:voice-<digits>``), up to ``max_reprompts`` times, then a goodbye;
- transfer: when a turn hands the conversation to a person (slot ``handoff_active``, set by the handoff
  action), the bot's words are spoken and the call is transferred with ``<Dial>`` to ``transfer_number``.
"""

from __future__ import annotations

from typing import Any

import structlog
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.channels.twilio_voice import TwilioVoiceInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.twiml.voice_response import Gather, VoiceResponse

from app.channels.common import Handler, Inbound, check_text, correlation_id, refusal
from app.channels.rendering import Reply, parse_reply, speech
from app.channels.turns import InvalidRequest
from app.channels.twilio import E164, TwilioChecks

logger = structlog.get_logger(__name__)

DEFAULTS = {
    "initial_prompt": "hello",
    "reprompt_fallback_phrase": "Sorry, I didn't catch that.",
    "assistant_voice": "Polly.Joanna",
    "speech_timeout": "2",
    "speech_model": "phone_call",
    "enhanced": "false",
}
TRANSFER_SAYING = "Connecting you to a member of our team."
NO_ANSWER_SAYING = (
    "Nobody could take your call just now. Your request stays open and we will get back to you."
)
GOODBYE = "I can't hear you, so I'll hang up now. Call again any time. Goodbye."


class SpokenReplies(CollectingOutputChannel):
    """Collects the bot's messages whole (Rasa's voice collector splits paragraphs and drops sources)."""

    @classmethod
    def name(cls) -> str:
        return "twilio_voice"

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        self.messages.append(dict(message))


class VoiceChannel(TwilioChecks, TwilioVoiceInput):
    """Rasa's ``TwilioVoiceInput`` with signature checks, tenancy, re-prompts and transfers (see above)."""

    @classmethod
    def name(cls) -> str:
        return "twilio_voice"

    def __init__(self, credentials: dict[str, Any]) -> None:
        settings = {**DEFAULTS, **{k: v for k, v in credentials.items() if k in DEFAULTS and v}}
        TwilioVoiceInput.__init__(self, **{k: str(v) for k, v in settings.items()})
        self._init_twilio(credentials, self.name())
        self.transfer_number = str(credentials.get("transfer_number") or "")
        if not E164.match(self.transfer_number):
            raise ValueError("twilio_voice: transfer_number must be an E.164 phone number (+15550100)")
        self.language = str(credentials.get("language") or "en-US")
        self.silence_timeout_s = int(credentials.get("silence_timeout_s") or 5)
        reprompts = credentials.get("max_reprompts")
        self.max_reprompts = int(2 if reprompts is None else reprompts)
        self.max_spoken_chars = int(credentials.get("max_spoken_chars") or 320)

    def inbound(self, request: Request) -> tuple[Inbound, bool]:
        """The caller's turn, and whether it is silence (no speech, no key pressed, call under way)."""
        form, tenant, sender = self.check_twilio(request, "voice")
        said = form.value("SpeechResult") or form.value("Digits") or None
        silent = said is None and form.value("CallStatus") != "ringing"
        text = self.initial_prompt if said is None else said
        inbound = Inbound(
            self.name(),
            tenant,
            sender,
            "" if silent else check_text(text, self.max_message_chars),
            correlation_id(request.headers, form.value("CallSid")),
            extra={"twilio_voice": {"to": form.value("To"), "call": form.value("CallSid")}},
        )
        return inbound, silent

    def blueprint(self, on_new_message: Handler) -> Blueprint:
        hook = self.webhook_blueprint()

        @hook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            try:
                inbound, silent = self.inbound(request)
                reprompts = request.args.get("reprompts", "0")
                if not reprompts.isdigit():
                    raise InvalidRequest(400, "invalid_query", "'reprompts' must be a number.")
            except InvalidRequest as exc:
                return refusal(exc, self.name())
            if silent:
                twiml = await self.reprompt(request, inbound, int(reprompts))
            else:
                inbound = await self.answer_to_options(request, inbound)
                collector = SpokenReplies()
                failed = await self.handle(inbound, collector, on_new_message)
                if failed:
                    return failed
                replies = [parse_reply(m) for m in collector.messages]
                if await self.handoff_active(request, inbound.conversation_id):
                    twiml = self.transfer(replies)
                else:
                    twiml = self.say_and_listen(replies, reprompts=0)
            return response.text(
                str(twiml), content_type="text/xml", headers={"X-Request-Id": inbound.correlation_id}
            )

        return hook

    async def reprompt(self, request: Request, inbound: Inbound, reprompts: int) -> VoiceResponse:
        """Silence: the re-prompt and the bot's last messages again, or a goodbye after ``max_reprompts``."""
        if reprompts >= self.max_reprompts:
            twiml = VoiceResponse()
            twiml.say(GOODBYE, voice=self.assistant_voice, language=self.language)
            twiml.hangup()
            return twiml
        last: list[Reply] = []
        for event in await self.tracker_events(request, inbound.conversation_id):
            if event.get("event") == "user":
                last = []
            elif event.get("event") == "bot":
                last.append(parse_reply({"text": event.get("text"), **(event.get("data") or {})}))
        prompt = Reply(text=self.reprompt_fallback_phrase)
        return self.say_and_listen([prompt, *last], reprompts=reprompts + 1)

    def say_and_listen(self, replies: list[Reply], reprompts: int) -> VoiceResponse:
        """Every reply spoken inside a ``<Gather>`` (the caller may interrupt), listening for speech, and for a
        key when options are offered."""
        buttons = [b for r in replies for b in r.buttons]
        action = f"/webhooks/{self.name()}/webhook" + (f"?reprompts={reprompts}" if reprompts else "")
        gather = Gather(
            input="dtmf speech" if buttons else "speech",
            action=action,
            method="POST",
            actionOnEmptyResult=True,
            timeout=self.silence_timeout_s,
            speechTimeout=self.speech_timeout,
            speechModel=self.speech_model,
            enhanced=self.enhanced,
            language=self.language,
            bargeIn=True,
            hints=", ".join(b.title for b in buttons)[:500] or None,
            numDigits=1 if 0 < len(buttons) <= 9 else None,
        )
        for reply in replies:
            spoken = speech(reply, self.max_spoken_chars)
            if spoken:
                gather.say(spoken, voice=self.assistant_voice, language=self.language)
        twiml = VoiceResponse()
        twiml.append(gather)
        return twiml

    def transfer(self, replies: list[Reply]) -> VoiceResponse:
        """The bot's first message (the ticket it opened), "connecting you", then the call transferred to
        ``transfer_number``; if nobody answers, a message and the end of the call (the ticket stays open).
        The handoff's other messages are for a chat ("everything you write here goes to them")."""
        twiml = VoiceResponse()
        spoken = [s for s in (speech(r, self.max_spoken_chars) for r in replies[:1]) if s]
        twiml.say(" ".join([*spoken, TRANSFER_SAYING]), voice=self.assistant_voice, language=self.language)
        twiml.dial(self.transfer_number, timeout=30)
        twiml.say(NO_ANSWER_SAYING, voice=self.assistant_voice, language=self.language)
        twiml.hangup()
        return twiml
