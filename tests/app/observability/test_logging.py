"""Our JSON logs (app/observability/logging.py): personal data and credentials are masked in every line,
structlog's and the standard library's alike, exception text included; our ids stay readable."""

from __future__ import annotations

import logging

import structlog

from tests.app.observability.logs import json_log_lines

MESSAGE = "I'm alice@example.com, call +49 30 12345678, card 4111 1111 1111 1111"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"


def test_structlog_values_are_masked_at_any_depth():
    with json_log_lines() as lines:
        structlog.get_logger("test").info(
            "turn.received", text=MESSAGE, slots={"email": "bob@example.org"}, entities=[{"value": MESSAGE}]
        )
        (line,) = lines()
    assert line["text"] == "I'm [email], call [phone], card [card]"
    assert line["slots"] == {"email": "[email]"}
    assert line["entities"] == [{"value": "I'm [email], call [phone], card [card]"}]
    assert "alice@example.com" not in str(line) and "4111" not in str(line)


def test_standard_library_messages_and_exceptions_are_masked():
    with json_log_lines() as lines:
        logging.getLogger("sanic.access").warning("POST from %s: %s", "127.0.0.1", MESSAGE)
        try:
            raise ValueError(f"could not parse {MESSAGE!r} with Authorization: Bearer {TOKEN}")
        except ValueError:
            structlog.get_logger("test").exception("turn.failed")
        access, failure = lines()
    assert access["event"] == "POST from 127.0.0.1: I'm [email], call [phone], card [card]"
    assert "ValueError" in failure["exception"] and "Bearer [secret]" in failure["exception"]
    for secret in ("alice@example.com", "12345678", "4111 1111", TOKEN):
        assert secret not in failure["exception"]


def test_our_ids_are_kept_as_they_are():
    ids = {
        "correlation_id": "req-0301234567-2026",
        "tenant_id": "acme",
        "user_id": "alice@example.com",  # an id, which the retention tooling finds by its value
        "conversation_id": "acme:alice@example.com",
    }
    with structlog.contextvars.bound_contextvars(**ids), json_log_lines() as lines:
        structlog.get_logger("test").info("turn.done", duration_ms=12.5, status=200)
        (line,) = lines()
    assert {k: line[k] for k in ids} == ids
    assert (line["duration_ms"], line["status"], line["level"]) == (12.5, 200, "info")
    assert line["timestamp"].startswith("20")
