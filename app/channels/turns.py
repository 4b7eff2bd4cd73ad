"""What a REST turn must look like, checked the same way by the Rasa channel and by the gateway.

Standard library only: the Rasa channel (Python 3.10, pydantic 1) and the gateway (Python 3.11) import it.
The id patterns are :mod:`app.identity`'s (re-exported here for the gateway).
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any

from app.identity import ID_PATTERN, TENANT_PATTERN

__all__ = [
    "CHANNEL_SECRET_HEADER",
    "ID_PATTERN",
    "REQUEST_ID_PATTERN",
    "TENANT_PATTERN",
    "InvalidRequest",
    "channel_headers",
    "check_channel_secret",
    "check_turn",
]

# The shared secret the gateway sends Rasa's REST channel (SWITCHBOARD_CHANNEL_SECRET), so that the channel,
# which trusts X-Tenant-Id, answers only the gateway when it listens beyond loopback.
CHANNEL_SECRET_HEADER = "X-Channel-Secret"

# An X-Request-Id the gateway and the vendor channels take as the correlation id; anything else is replaced
# (a log line must not carry what a client wrote into it).
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class InvalidRequest(Exception):
    """A request refused before the bot sees it, with the HTTP status and a message for the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_turn(body: bytes, max_message_chars: int) -> dict[str, Any]:
    """The turn's JSON object if its body, ``sender`` and ``message`` are acceptable; else ``InvalidRequest``
    (400 malformed JSON, not an object, bad sender, empty message, metadata neither an object nor null; 413
    message too long). The REST channel and the gateway both check a turn with it: they refuse the same bodies."""
    try:
        payload = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidRequest(400, "malformed_json", "The request body is not valid JSON.") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest(400, "invalid_body", "The request body must be a JSON object.")
    sender = payload.get("sender")
    if not isinstance(sender, str) or not ID_PATTERN.match(sender):
        raise InvalidRequest(
            400,
            "invalid_sender",
            "'sender' is required: 1-128 characters of letters, digits, '_', '.', '@' or '-'.",
        )
    text = payload.get("message")
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest(400, "invalid_message", "'message' is required and must be non-empty text.")
    if len(text) > max_message_chars:
        raise InvalidRequest(
            413, "message_too_long", f"'message' is longer than {max_message_chars} characters."
        )
    if payload.get("metadata") is not None and not isinstance(payload["metadata"], dict):
        raise InvalidRequest(400, "invalid_metadata", "'metadata' must be a JSON object.")
    return payload


def check_channel_secret(given: str | None, secret: str) -> None:
    """Nothing when no channel secret is configured or ``given`` is it (compared in constant time); else
    ``InvalidRequest`` 401."""
    if secret and not hmac.compare_digest((given or "").encode(), secret.encode()):
        raise InvalidRequest(
            401,
            "invalid_channel_secret",
            f"This channel answers the gateway only: the {CHANNEL_SECRET_HEADER} header is missing or wrong.",
        )


def channel_headers(secret: str) -> dict[str, str]:
    """The header a client of the channel itself (the gateway, tests, benchmarks) sends; none without a
    secret."""
    return {CHANNEL_SECRET_HEADER: secret} if secret else {}
