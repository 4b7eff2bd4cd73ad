"""A small synchronous client for the bot's REST channel, used by the Streamlit pages.

The contract (``app/channels/rest.py``): ``POST {rasa_url}/webhooks/rest/webhook`` with
``{"sender": ..., "message": ..., "metadata": {...}}`` and the ``X-Tenant-Id`` / ``X-Request-Id`` headers;
the reply is a JSON list of bot messages, and bad input gets a 4xx with ``{"error": ..., "message": ...}``.
Through the gateway (``app/gateway``) the same contract needs ``Authorization: Bearer <JWT>`` too: give the
client a ``token_factory``, or build it with :func:`client_for` from the settings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from app.channels.rendering import Button  # a quick reply: the one button of every channel

if TYPE_CHECKING:
    from app.settings import Settings

DEFAULT_TIMEOUT_S = 30.0  # a knowledge question may take a few seconds on a small machine
CONNECT_TIMEOUT_S = 3.0  # the bot runs nearby: a slow connect means it is down
HEALTH_TIMEOUT_S = 2.0


class ChatError(Exception):
    """Base class: the bot did not give a usable answer to a message."""


class BotUnavailable(ChatError):
    """The bot could not be reached: connection refused, network error or no answer in time."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"The bot is not reachable at {url}: {reason}.")
        self.url, self.reason = url, reason


class BotRejected(ChatError):
    """The bot refused the message (HTTP 4xx), e.g. an invalid sender or a message that is too long."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"The bot rejected the message (HTTP {status}, {code}): {message}")
        self.status, self.code, self.message = status, code, message


class BotFailed(ChatError):
    """The bot was reached but failed (HTTP 5xx) or answered something that is not a list of messages."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"The bot failed to answer (HTTP {status}): {message}")
        self.status, self.message = status, message


@dataclass(frozen=True)
class BotMessage:
    """One message of the bot's reply; any of the parts may be missing."""

    text: str | None = None
    buttons: tuple[Button, ...] = ()
    image: str | None = None
    custom: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BotMessage:
        """Build a message from one item of the webhook's reply; keys other than these parts are ignored."""
        buttons = tuple(
            Button(title=str(b.get("title") or b.get("payload") or ""), payload=str(b.get("payload") or ""))
            for b in data.get("buttons") or []
            if isinstance(b, dict)
        )
        return cls(
            text=data.get("text"),
            buttons=buttons,
            image=data.get("image"),
            custom=data.get("custom"),
        )


def _error_message(response: httpx.Response) -> tuple[str, str]:
    """The ``(code, message)`` of an error reply, falling back to the status text for non-JSON bodies."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("error") or "error"), str(body.get("message") or response.reason_phrase)
    return "error", response.text.strip()[:200] or response.reason_phrase


class ChatClient:
    """Sends user messages to the bot's REST webhook for one tenant and returns the bot's messages.

    ``transport`` replaces the network (e.g. ``httpx.MockTransport``); by default httpx's own is used.
    ``token_factory(tenant, sender)`` returns a bearer token for each message (needed by the gateway).
    ``headers`` go with every message (the channel secret, when talking to Rasa directly).
    """

    def __init__(
        self,
        webhook_url: str,
        tenant: str,
        timeout: float = DEFAULT_TIMEOUT_S,
        *,
        transport: httpx.BaseTransport | None = None,
        token_factory: Callable[[str, str], str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.tenant = tenant
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S))
        self._transport = transport
        self._token_factory = token_factory
        self._headers = dict(headers or {})

    def send(self, sender: str, text: str, metadata: dict[str, Any] | None = None) -> list[BotMessage]:
        """Send ``text`` as user ``sender`` and return the bot's reply (possibly empty).

        Raises ``BotUnavailable`` (not reachable or too slow), ``BotRejected`` (4xx) or ``BotFailed``
        (5xx or an unexpected reply).
        """
        payload: dict[str, Any] = {"sender": sender, "message": text}
        if metadata:
            payload["metadata"] = metadata
        headers = {**self._headers, "X-Tenant-Id": self.tenant, "X-Request-Id": uuid.uuid4().hex}
        if self._token_factory is not None:
            headers["Authorization"] = f"Bearer {self._token_factory(self.tenant, sender)}"
        try:
            with httpx.Client(timeout=self.timeout, transport=self._transport) as http:
                response = http.post(self.webhook_url, json=payload, headers=headers)
        except httpx.TimeoutException as exc:
            raise BotUnavailable(self.webhook_url, f"no answer within {self.timeout.read:g} s") from exc
        except httpx.TransportError as exc:
            raise BotUnavailable(self.webhook_url, str(exc) or type(exc).__name__) from exc

        if 400 <= response.status_code < 500:
            raise BotRejected(response.status_code, *_error_message(response))
        if response.status_code != 200:
            raise BotFailed(response.status_code, _error_message(response)[1])
        try:
            body = response.json()
        except ValueError as exc:
            raise BotFailed(response.status_code, "the reply is not JSON") from exc
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise BotFailed(response.status_code, "the reply is not a list of messages")
        return [BotMessage.from_json(item) for item in body]


DEMO_TOKEN_TTL_S = 300  # a fresh token per message: short-lived is enough


def client_for(
    settings: Settings, tenant: str, *, transport: httpx.BaseTransport | None = None
) -> ChatClient:
    """The chat page's client: through the gateway with a token minted per message for the demo user (the
    conversation's sender, on ``gateway.demo_plan``) when ``SWITCHBOARD_JWT_SECRET`` is set (``make run``
    sets a random one per run), else straight to the Rasa REST channel."""
    secret = settings.jwt_secret.get_secret_value()
    if not secret:
        return ChatClient(settings.webhook_url, tenant, transport=transport, headers=settings.channel_headers)
    from app.gateway.auth import mint_token
    from app.gateway.config import gateway_params

    plan = gateway_params(settings).demo_plan

    def token(tenant_id: str, sender: str) -> str:
        try:
            return mint_token(
                secret,
                tenant=tenant_id,
                user=sender,
                plan=plan,
                ttl_s=DEMO_TOKEN_TTL_S,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
        except ValueError as exc:  # e.g. a tenant typed in the sidebar that is not a valid id
            raise BotRejected(400, "invalid_request", str(exc)) from exc

    return ChatClient(settings.chat_webhook_url, tenant, transport=transport, token_factory=token)


def is_up(rasa_url: str, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    """True if a Rasa server answers ``GET {rasa_url}/`` with its greeting within ``timeout`` seconds."""
    try:
        response = httpx.get(f"{rasa_url.rstrip('/')}/", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text.startswith("Hello from Rasa")


@dataclass(frozen=True)
class Notification:
    """A message for the user's chat from outside a turn: a refund done, a ticket update, an agent."""

    id: int
    text: str
    created_at: str = ""


class NotificationsUnavailable(ChatError):
    """The notification service could not be reached or answered something unusable."""


def fetch_notifications(
    service_url: str,
    tenant: str,
    user: str,
    after: int | None = None,
    timeout: float = HEALTH_TIMEOUT_S,
    *,
    transport: httpx.BaseTransport | None = None,
) -> list[Notification]:
    """The user's messages after id ``after`` (all undelivered ones when None), oldest first.

    ``GET {service_url}/notifications/{tenant}/{user}?after=...`` (the CRM service). The service marks them
    delivered; a page that lost the reply asks again with the same ``after`` and gets them again.
    """
    params = {} if after is None else {"after": after}
    url = f"{service_url.rstrip('/')}/notifications/{tenant}/{user}"
    try:
        with httpx.Client(timeout=timeout, transport=transport) as http:
            response = http.get(url, params=params)
    except httpx.HTTPError as exc:
        raise NotificationsUnavailable(f"notifications not reachable at {service_url}: {exc}") from exc
    if response.status_code != 200:
        raise NotificationsUnavailable(
            f"notifications failed (HTTP {response.status_code}): {response.text[:200]}"
        )
    try:
        items = response.json()["notifications"]
        return [
            Notification(id=int(n["id"]), text=str(n["text"]), created_at=str(n.get("created_at") or ""))
            for n in items
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise NotificationsUnavailable("the notification reply is not a list of messages") from exc
