"""nlu/rasa_cli.py: the action server's responses are checked by a validator built once, as strictly as Rasa's own
``jsonschema.validate`` (same acceptance, same error), without re-checking the schema on every response."""

from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from nlu import rasa_cli

GOOD = {
    "events": [{"event": "slot", "timestamp": None, "name": "knowledge_topic", "value": "refunds"}],
    "responses": [{"text": "Refunds take 5 business days.", "buttons": []}],
}
BAD = [
    {"events": "not a list", "responses": []},
    {"events": [{"event": "slot", "name": 3}], "responses": []},
    {"events": [], "responses": ["not an object"]},
    {"events": [{"event": "no_such_event"}]},
]


@pytest.fixture
def patched(monkeypatch):
    original = RemoteAction._validate_action_result
    monkeypatch.setattr(RemoteAction, "_validate_action_result", original)  # undone after the test
    rasa_cli.check_action_responses_with_one_validator()
    return original, RemoteAction._validate_action_result


def test_the_one_validator_accepts_and_rejects_what_rasa_does_with_the_same_message(patched):
    original, fast = patched
    assert fast is not original
    action = RemoteAction("action_answer_knowledge", None)
    assert fast(action, GOOD) is True and original(action, GOOD) is True
    for result in BAD:
        with pytest.raises(jsonschema.ValidationError) as theirs:
            original(action, result)
        with pytest.raises(jsonschema.ValidationError) as ours:
            fast(action, result)
        assert ours.value.message == theirs.value.message, result
        assert "Failed to validate Action server response" in ours.value.message


def test_the_schema_is_checked_once_not_per_response(patched, monkeypatch):
    _, fast = patched
    checks = []
    monkeypatch.setattr(
        jsonschema.validators.Draft202012Validator,
        "check_schema",
        classmethod(lambda cls, s: checks.append(s)),
    )
    monkeypatch.setattr(
        jsonschema.validators.Draft7Validator, "check_schema", classmethod(lambda cls, s: checks.append(s))
    )
    action = RemoteAction("action_answer_knowledge", None)
    for _ in range(3):
        fast(action, GOOD)
    assert checks == []
