"""Local stand-ins for the vendors' servers, and requests signed as each vendor signs them (tests only).

One ``http.server`` on a loopback port plays:

- Slack's Web API: ``POST /slack/api/chat.postMessage`` (records the message, answers ``ok``);
- Microsoft: the Bot Framework OpenID configuration (``GET /microsoft/openid``), its key set with a test RSA
  key endorsed for ``msteams`` (``GET /microsoft/keys``), the token endpoint (``POST /microsoft/token``) and
  the Bot Connector's reply endpoint (``POST /teams/v3/conversations/<id>/activities[/<id>]``);
- Twilio's REST API: ``POST /twilio/2010-04-01/Accounts/<sid>/Messages.json`` (records an SMS).

Every request is recorded (:attr:`VendorStandIn.seen`). The signing helpers follow the vendors' documents
(Slack: HMAC-SHA256 of ``v0:<ts>:<body>``; Twilio: base64 HMAC-SHA1 of the URL and the sorted fields;
Microsoft: an RS256 JWT from the stand-in's key), written here independently of the code under test.
Standard library, PyJWT and cryptography only: both test environments import it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

DATA = Path(__file__).resolve().parents[2] / "data" / "channels"
KEY_ID = "switchboard-test-key"
ISSUER = "https://api.botframework.com"
ACCESS_TOKEN = "test-access-token"


def recorded(name: str) -> Any:
    """A recorded vendor request from ``tests/data/channels``: JSON as a dict, a form as a list of pairs."""
    text = (DATA / name).read_text(encoding="utf-8")
    if name.endswith(".json"):
        return json.loads(text)
    return parse_qsl(text.strip(), keep_blank_values=True)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


class VendorStandIn:
    """The stand-in server (see the module docstring); a context manager."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                stand_in.record(self, b"")
                if self.path == "/microsoft/openid":
                    self._answer(200, {"issuer": ISSUER, "jwks_uri": f"{stand_in.url}/microsoft/keys"})
                elif self.path == "/microsoft/keys":
                    self._answer(200, {"keys": [stand_in.jwk()]})
                else:
                    self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.record(self, body)
                if self.path == "/slack/api/chat.postMessage":
                    self._answer(200, {"ok": True, "ts": f"{time.time():.6f}"})
                elif self.path == "/microsoft/token":
                    self._answer(
                        200, {"token_type": "Bearer", "expires_in": 3600, "access_token": ACCESS_TOKEN}
                    )
                elif self.path.startswith("/teams/v3/conversations/"):
                    self._answer(200, {"id": uuid.uuid4().hex})
                elif self.path.startswith("/twilio/2010-04-01/Accounts/") and self.path.endswith(
                    "/Messages.json"
                ):
                    form = dict(parse_qsl(body.decode()))
                    self._answer(201, {"sid": f"SM{uuid.uuid4().hex}", "status": "queued", **form})
                else:
                    self._answer(404, {"error": "not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self.lock:
            self.seen.append(Seen(handler.command, handler.path, dict(handler.headers), body))

    def __enter__(self) -> VendorStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what the bot sent --------------------------------------------------------------------------------

    def requests(self, prefix: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.startswith(prefix)]

    def wait_for(self, prefix: str, count: int, timeout: float = 60.0) -> list[Seen]:
        """The requests under ``prefix`` once there are at least ``count`` (Slack replies come after the 200)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests(prefix)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"{len(self.requests(prefix))} requests to {prefix} after {timeout} s, not {count}"
        )

    def slack_messages(self, channel: str) -> list[dict[str, Any]]:
        return [
            s.json()
            for s in self.requests("/slack/api/chat.postMessage")
            if s.json().get("channel") == channel
        ]

    def sms_to(self, number: str) -> list[str]:
        return [s.form()["Body"] for s in self.requests("/twilio/") if s.form().get("To") == number]

    def teams_replies(self, conversation: str) -> list[dict[str, Any]]:
        return [
            s.json()
            for s in self.requests("/teams/v3/conversations/")
            if s.json()["conversation"]["id"] == conversation
        ]

    # --- Microsoft's side ---------------------------------------------------------------------------------

    def jwk(self) -> dict[str, Any]:
        key = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {**key, "kid": KEY_ID, "use": "sig", "endorsements": ["msteams"]}

    def teams_token(self, app_id: str, service_url: str, **override: Any) -> str:
        """A Bot Connector token as Microsoft signs it (claims overridable, ``None`` removes one)."""
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": app_id, "serviceurl": service_url, "nbf": now - 5, "exp": now + 3600}
        claims = {k: v for k, v in {**claims, **override}.items() if v is not None}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KEY_ID})


# --- requests signed as the vendors sign them ----------------------------------------------------------------


def slack_headers(
    secret: str, body: bytes, timestamp: int | None = None, content_type: str = "application/json"
):
    """``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` for ``body``, signed with ``secret``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def twilio_signature(auth_token: str, url: str, fields: list[tuple[str, str]]) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL followed by each field's name and value, sorted."""
    data = url + "".join(f"{k}{v}" for k, v in sorted(fields))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_request(auth_token: str, url: str, fields: list[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
    """The form body and headers Twilio posts to ``url``."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(auth_token, url, fields),
    }
    return urlencode(fields).encode(), headers


def with_fields(fields: list[tuple[str, str]], **values: str) -> list[tuple[str, str]]:
    """A recorded form with some fields replaced (or added)."""
    out = [(k, values.pop(k)) if k in values else (k, v) for k, v in fields]
    return out + list(values.items())
