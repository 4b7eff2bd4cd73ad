"""Microsoft Teams through the Bot Framework: activities on ``/webhooks/botframework/webhook``.

Rasa's ``BotFrameworkInput`` fetches Microsoft's signing keys over the internet in its constructor (so the
server cannot start offline), trusts the token's own ``alg`` header, checks neither issuer nor ``serviceUrl``,
answers 200 even when handling failed, and posts replies with blocking ``requests`` calls. This subclass keeps
its output channel's protocol (the Bot Connector REST API and the client-credentials token) and adds:

- the OpenID configuration, key-set and token URLs are settings (``openid_url``, ``jwks_url``, ``token_url``),
  so tests serve them from a local stand-in; keys are fetched on the first request, off the event loop,
  refreshed daily and when a token names a key not yet known (at most every 5 minutes);
- each request's bearer token is checked as Microsoft documents it: RS256 only, signed by a published key,
  issuer ``https://api.botframework.com``, audience the bot's app id, not expired (5 minutes of clock skew),
  its ``serviceurl`` claim equal to the activity's ``serviceUrl``, and the key endorsed for the activity's
  ``channelId`` when the key lists endorsements; anything else gets 401 (403 for a ``serviceUrl`` that is
  not the token's or not an allowed Bot Connector host: replies carry our access token there);
- malformed activities get 400, oversized ones 413, a handling failure 500 (nothing is stored);
- the Microsoft Entra tenant (``channelData.tenant.id``) maps to one of our tenants (``tenants``, from
  params.yaml ``channels.teams.tenants``), the sender is ``teams-<Entra object id>`` (stable across chats),
  and replies go through the one response model: Markdown text with source links, buttons as ``messageBack``
  card actions, posted as replies to the user's activity.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any
from urllib.parse import quote

import jwt
import requests
import structlog
from jwt.algorithms import RSAAlgorithm
from rasa.core.channels.botframework import BEARER_REGEX, BotFramework, BotFrameworkInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

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
from app.channels.rendering import parse_reply, teams_activity
from app.channels.turns import InvalidRequest

logger = structlog.get_logger(__name__)

OPENID_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
TOKEN_URL = "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"
TOKEN_SCOPE = "https://api.botframework.com/.default"
ISSUER = "https://api.botframework.com"
SERVICE_URLS = ("https://smba.trafficmanager.net/",)  # the Bot Connector hosts of Teams
CLOCK_SKEW_S = 300
KEYS_MAX_AGE_S = 24 * 3600
KEYS_MIN_REFRESH_S = 300
HTTP_TIMEOUT_S = 10
MENTION = re.compile(r"<at>[^<]*</at>")


class KeysUnavailable(Exception):
    """Microsoft's signing keys could not be fetched (a 503: the request may be retried)."""


class SigningKeys:
    """The Bot Connector's published signing keys (JWKs by ``kid``), fetched lazily, off the event loop."""

    def __init__(self, openid_url: str, jwks_url: str | None = None) -> None:
        self.openid_url, self.jwks_url = openid_url, jwks_url
        self.keys: dict[str, dict[str, Any]] = {}
        self.fetched_at = 0.0
        self._lock = asyncio.Lock()

    def _fetch(self) -> dict[str, dict[str, Any]]:
        jwks_url = self.jwks_url
        if not jwks_url:
            config = requests.get(self.openid_url, timeout=HTTP_TIMEOUT_S)
            config.raise_for_status()
            jwks_url = config.json()["jwks_uri"]
        reply = requests.get(jwks_url, timeout=HTTP_TIMEOUT_S)
        reply.raise_for_status()
        return {k["kid"]: k for k in reply.json()["keys"] if isinstance(k, dict) and "kid" in k}

    def _stale(self, kid: str) -> bool:
        age = time.monotonic() - self.fetched_at
        return not self.keys or age > KEYS_MAX_AGE_S or (kid not in self.keys and age > KEYS_MIN_REFRESH_S)

    async def key(self, kid: str) -> dict[str, Any] | None:
        """The JWK ``kid``; None when Microsoft does not publish it. ``KeysUnavailable`` when no keys can be
        had at all (with keys from before, a failed refresh is retried after ``KEYS_MIN_REFRESH_S``)."""
        if self._stale(kid):
            async with self._lock:
                if self._stale(kid):  # another request may have refreshed them meanwhile
                    try:
                        self.keys = await asyncio.to_thread(self._fetch)
                        self.fetched_at = time.monotonic()
                    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
                        logger.error(
                            "teams.keys.unavailable", url=self.jwks_url or self.openid_url, error=repr(exc)
                        )
                        if not self.keys:
                            raise KeysUnavailable(str(exc)) from exc
                        self.fetched_at = time.monotonic() - KEYS_MAX_AGE_S + KEYS_MIN_REFRESH_S
        return self.keys.get(kid)


class AccessToken:
    """The bot's own token for the Bot Connector (client credentials), cached until shortly before expiry."""

    def __init__(self, app_id: str, app_password: str, token_url: str) -> None:
        self.app_id, self.app_password, self.token_url = app_id, app_password, token_url
        self.value, self.expires_at = "", 0.0
        self._lock = asyncio.Lock()

    def _fetch(self) -> tuple[str, float]:
        reply = requests.post(
            self.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": self.app_id,
                "client_secret": self.app_password,
                "scope": TOKEN_SCOPE,
            },
            timeout=HTTP_TIMEOUT_S,
        )
        reply.raise_for_status()
        body = reply.json()
        return str(body["access_token"]), time.monotonic() + int(body.get("expires_in", 3600))

    async def header(self) -> dict[str, str]:
        async with self._lock:
            if time.monotonic() > self.expires_at - CLOCK_SKEW_S:
                self.value, self.expires_at = await asyncio.to_thread(self._fetch)
        return {"Authorization": f"Bearer {self.value}", "Content-Type": "application/json"}


class TeamsReplies(BotFramework):
    """Rasa's Bot Framework output channel: replies to the user's activity, rendered from the response
    model, posted off the event loop with a timeout and our cached token."""

    def __init__(self, token: AccessToken, activity: dict[str, Any], link_template: str | None) -> None:
        super().__init__(
            token.app_id,
            token.app_password,
            activity["conversation"],
            activity["recipient"],
            activity["serviceUrl"],
        )
        self.token, self.user, self.reply_to = token, activity["from"], activity.get("id")
        self.link_template = link_template

    def url(self) -> str:
        base = f"{self.global_uri}conversations/{quote(str(self.conversation['id']), safe='')}/activities"
        return f"{base}/{quote(str(self.reply_to), safe='')}" if self.reply_to else base

    async def send(self, message_data: dict[str, Any]) -> None:
        try:
            headers = await self.token.header()
            reply = await asyncio.to_thread(
                requests.post,
                self.url(),
                headers=headers,
                data=json.dumps(message_data),
                timeout=HTTP_TIMEOUT_S,
            )
            reply.raise_for_status()
        except (requests.RequestException, ValueError, KeyError) as exc:  # logged; the turn itself is kept
            logger.error("teams.reply.failed", url=self.global_uri, error=repr(exc)[:300])

    async def send_response(self, recipient_id: str, message: dict[str, Any]) -> None:
        reply = parse_reply(message, self.link_template)
        if reply.empty:
            return
        activity = teams_activity(reply)
        activity.update(
            {"from": self.bot, "recipient": self.user, "conversation": self.conversation}
            | ({"replyToId": self.reply_to} if self.reply_to else {})
        )
        await self.send(activity)


def _activity(body: bytes) -> dict[str, Any]:
    """The request's activity, shape-checked (``InvalidRequest`` 400 otherwise)."""
    try:
        activity = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidRequest(400, "malformed_json", "The activity is not valid JSON.") from exc
    if not isinstance(activity, dict) or not isinstance(activity.get("type"), str):
        raise InvalidRequest(400, "invalid_activity", "The activity must be a JSON object with a 'type'.")
    if activity["type"] != "message":
        return activity
    service_url = activity.get("serviceUrl")
    for name in ("from", "recipient", "conversation"):
        if not isinstance(activity.get(name), dict) or not isinstance(activity[name].get("id"), str):
            raise InvalidRequest(400, "invalid_activity", f"A message activity needs '{name}.id'.")
    if not isinstance(service_url, str) or not service_url.startswith(("https://", "http://")):
        raise InvalidRequest(400, "invalid_activity", "A message activity needs an http(s) 'serviceUrl'.")
    if activity.get("text") is not None and not isinstance(activity["text"], str):
        raise InvalidRequest(400, "invalid_activity", "'text' must be a string.")
    return activity


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


class TeamsChannel(VendorChannel, BotFrameworkInput):
    """Rasa's ``BotFrameworkInput`` made safe and offline-startable (see the module docstring)."""

    @classmethod
    def name(cls) -> str:
        return "botframework"

    def __init__(self, credentials: dict[str, Any]) -> None:  # no network here: keys come on first use
        self.app_id = credentials.get("app_id") or ""
        self.app_password = credentials.get("app_password") or ""
        if not self.app_id or not self.app_password:
            raise ValueError("botframework: app_id and app_password are required")
        self._init_common(credentials)
        self.issuer = credentials.get("issuer") or ISSUER
        self.keys = SigningKeys(credentials.get("openid_url") or OPENID_URL, credentials.get("jwks_url"))
        self.token = AccessToken(self.app_id, self.app_password, credentials.get("token_url") or TOKEN_URL)
        self.service_urls = tuple(credentials.get("service_urls") or SERVICE_URLS)
        self.tenants = check_tenant_map(credentials.get("tenants"), "botframework", "tenant")

    async def claims(self, authorization: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The verified claims of the request's token and the key that signed it (``InvalidRequest`` 401,
        ``KeysUnavailable``)."""
        match = BEARER_REGEX.match(authorization or "")
        if not match:
            raise InvalidRequest(
                401, "missing_token", "An 'Authorization: Bearer <token>' header is required."
            )
        token = match.group(1).strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidRequest(401, "invalid_token", "The bearer token is not a JWT.") from exc
        if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
            raise InvalidRequest(401, "invalid_token", "The token must be RS256 with a key id.")
        jwk = await self.keys.key(header["kid"])
        if jwk is None:
            raise InvalidRequest(401, "invalid_token", "The token is signed by an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key=RSAAlgorithm.from_jwk(json.dumps(jwk)),
                algorithms=["RS256"],
                audience=self.app_id,
                issuer=self.issuer,
                leeway=CLOCK_SKEW_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidRequest(401, "invalid_token", f"The token is not valid: {exc}.") from exc
        return claims, jwk

    def check_activity(self, activity: dict[str, Any], claims: dict[str, Any], jwk: dict[str, Any]) -> None:
        """The activity's ``serviceUrl`` is the token's and an allowed host; its channel is endorsed."""
        service_url = activity["serviceUrl"]
        if not _same_url(str(claims.get("serviceurl") or claims.get("serviceUrl") or ""), service_url):
            raise InvalidRequest(403, "service_url_mismatch", "The activity's serviceUrl is not the token's.")
        if not any(service_url.lower().startswith(allowed.lower()) for allowed in self.service_urls):
            raise InvalidRequest(403, "service_url_not_allowed", "The activity's serviceUrl is not allowed.")
        endorsements = jwk.get("endorsements")
        if isinstance(endorsements, list) and activity.get("channelId") not in endorsements:
            raise InvalidRequest(
                403, "channel_not_endorsed", "The signing key is not endorsed for this channel."
            )

    def inbound(self, activity: dict[str, Any], headers: Any) -> Inbound | None:
        """A message activity as an :class:`Inbound` (None for a message with no text, e.g. a file only)."""
        channel_data = activity.get("channelData") if isinstance(activity.get("channelData"), dict) else {}
        tenant_id = (channel_data.get("tenant") or {}).get("id") or activity["conversation"].get("tenantId")
        tenant = tenant_of(tenant_id, self.tenants, "tenant")
        user = activity["from"]
        text = MENTION.sub("", activity.get("text") or "").strip()
        attachments = tuple(
            {"content_type": a.get("contentType"), "url": a.get("contentUrl"), "name": a.get("name")}
            for a in activity.get("attachments") or []
            if isinstance(a, dict) and a.get("contentUrl")
        )
        if not text:
            return None
        return Inbound(
            self.name(),
            tenant,
            sender_id("teams", str(user.get("aadObjectId") or user["id"])),
            check_text(text, self.max_message_chars),
            correlation_id(headers, activity.get("id")),
            attachments,
            extra={"teams": {"conversation": activity["conversation"]["id"], "activity": activity.get("id")}},
        )

    def blueprint(self, on_new_message: Handler) -> Blueprint:
        hook = self.webhook_blueprint()

        @hook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            try:
                self.check_request(request)
                claims, jwk = await self.claims(request.headers.get("authorization"))
                activity = _activity(request.body)
                if activity["type"] != "message":
                    return response.json({"status": "ignored"})
                self.check_activity(activity, claims, jwk)
                inbound = self.inbound(activity, request.headers)
            except KeysUnavailable:
                return response.json(
                    {"error": "keys_unavailable", "message": "Microsoft's signing keys cannot be fetched."},
                    status=503,
                )
            except InvalidRequest as exc:
                return refusal(exc, self.name())
            if inbound is None:
                return response.json({"status": "ignored"})
            output = TeamsReplies(self.token, activity, self.link_templates.get(inbound.tenant))
            failed = await self.handle(inbound, output, on_new_message)
            return failed or response.json({"status": "ok"}, headers={"X-Request-Id": inbound.correlation_id})

        return hook
