"""What the SMS and voice channels check the same way on every Twilio webhook.

Twilio signs each request: ``X-Twilio-Signature`` is the base64 HMAC-SHA1, keyed by the account's auth token,
of the URL Twilio called followed by the POST fields sorted by name. Rasa's ``TwilioInput`` and
``TwilioVoiceInput`` check nothing; ours check it with Twilio's own ``RequestValidator``. The URL Twilio
called is the public one (the gateway behind HTTPS), not the loopback address Rasa sees, so it is built from
``public_url`` (``SWITCHBOARD_PUBLIC_URL``) and the request's path and query.

Then the request must belong to our account (``AccountSid``), reach one of our numbers (``To``, mapped to a
tenant by ``numbers``), and come from a phone number (``From``, E.164): the sender id is
``<channel>-<digits>``, stable per caller.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from sanic.request import Request
from twilio.request_validator import RequestValidator

from app.channels.common import VendorChannel, check_tenant_map, sender_id, tenant_of
from app.channels.turns import InvalidRequest

SIGNATURE_HEADER = "X-Twilio-Signature"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class Form(dict):
    """A Twilio form body, field name -> values, blank fields kept: Twilio signs them, and Sanic's own form
    parser drops them (a real request with an empty field would never verify)."""

    @classmethod
    def parse(cls, request: Request) -> Form:
        kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise InvalidRequest(
                415, "unsupported_media_type", "Twilio posts application/x-www-form-urlencoded."
            )
        try:
            return cls(parse_qs((request.body or b"").decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise InvalidRequest(400, "invalid_body", "The form is not UTF-8.") from exc

    def getlist(self, name: str) -> list[str]:  # what Twilio's RequestValidator reads
        return self[name]

    def value(self, name: str) -> str | None:
        """The field's first value; None when absent."""
        values = self.get(name)
        return values[0] if values else None


class TwilioChecks(VendorChannel):
    """The Twilio part of a channel's set-up and request checks (see the module docstring)."""

    def _init_twilio(self, credentials: dict[str, Any], channel: str) -> None:
        self._init_common(credentials)
        self.account_sid = str(credentials.get("account_sid") or "")
        self.auth_token = str(credentials.get("auth_token") or "")
        self.public_url = str(credentials.get("public_url") or "").rstrip("/")
        if not self.account_sid or not self.auth_token or not self.public_url:
            raise ValueError(f"{channel}: account_sid, auth_token and public_url are required")
        self.validator = RequestValidator(self.auth_token)
        self.numbers = check_tenant_map(credentials.get("numbers"), channel, "number")
        for number in self.numbers:
            if not E164.match(number):
                raise ValueError(f"{channel}: {number!r} is not an E.164 phone number (+15550100)")

    def signed_url(self, request: Request) -> str:
        """The URL Twilio called: the public base, the path and the query string as received."""
        query = f"?{request.query_string}" if request.query_string else ""
        return f"{self.public_url}{request.path}{query}"

    def check_twilio(self, request: Request, channel: str) -> tuple[Form, str, str]:
        """The request's form, tenant and sender id, once its signature, account and numbers are right
        (``InvalidRequest``: 403 for a bad signature, another account or number; 400 for no caller)."""
        self.check_request(request)
        form = Form.parse(request)
        signature = request.headers.get(SIGNATURE_HEADER) or ""
        if not signature or not self.validator.validate(self.signed_url(request), form, signature):
            raise InvalidRequest(403, "invalid_signature", f"{SIGNATURE_HEADER} does not match the request.")
        if form.value("AccountSid") != self.account_sid:
            raise InvalidRequest(403, "unknown_account", "The request is for another Twilio account.")
        tenant = tenant_of(form.value("To"), self.numbers, "number")
        caller = form.value("From")
        if not caller or not E164.match(caller):
            raise InvalidRequest(400, "invalid_sender", "'From' must be a phone number in E.164 form.")
        return form, tenant, sender_id(channel, caller.lstrip("+"))
