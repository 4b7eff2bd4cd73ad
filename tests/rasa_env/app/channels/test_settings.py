"""The Rasa environment's settings reader (app/channels/settings.py): variables, defaults, clear errors."""

import pytest

from app.channels import settings


def test_defaults_without_variables():
    assert settings.max_message_chars({}) == settings.DEFAULT_MAX_MESSAGE_CHARS == 2000
    assert settings.default_tenant({}) == settings.DEFAULT_TENANT == "acme"
    assert settings.default_tenant({"SWITCHBOARD_TENANT": "  "}) == "acme"  # blank is unset


def test_variables_win():
    env = {"SWITCHBOARD_MAX_MESSAGE_CHARS": "120", "SWITCHBOARD_TENANT": "initech"}
    assert (settings.max_message_chars(env), settings.default_tenant(env)) == (120, "initech")


def test_the_process_environment_is_the_default_source(monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_MAX_MESSAGE_CHARS", "77")
    monkeypatch.setenv("SWITCHBOARD_TENANT", "globex")
    assert (settings.max_message_chars(), settings.default_tenant()) == (77, "globex")


@pytest.mark.parametrize("raw", ["lots", "0", "-5", "1.5"])
def test_a_bad_limit_is_refused_clearly(raw):
    with pytest.raises(ValueError, match="SWITCHBOARD_MAX_MESSAGE_CHARS must be a positive integer"):
        settings.max_message_chars({"SWITCHBOARD_MAX_MESSAGE_CHARS": raw})
