"""The run's credentials file (app/scaleout.py): configured channels only, secrets as ${VAR} references,
one status line per channel, and the launcher's use of it (no Rasa started here; the e2e test starts it)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from app.scaleout import CHANNEL_CLASSES, credentials_path, write_credentials
from app.settings import ROOT, Settings
from app.stack import Stack

SECRETS = {
    "slack_bot_token": "xoxb-secret-token",
    "slack_signing_secret": "slack-signing-secret",
    "teams_app_password": "teams-app-password",
    "twilio_auth_token": "twilio-auth-token",
}
IDS = {
    "teams_app_id": "c9e8c047-2a74-40a2-b28a-b162d5f5327c",
    "twilio_account_sid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    "public_url": "https://bot.example.com/",
    "voice_transfer_number": "+15550100999",
}
MAPS = {
    "slack": {"workspaces": {"T0NORTHWND": "acme"}},
    "teams": {"tenants": {"72f988bf-86f1-41af-91ab-2d7cd011db47": "acme"}},
    "sms": {"numbers": {"+15550100001": "acme"}},
    "voice": {"numbers": {"+15550100002": "globex"}},
}
CHANNEL_FIELDS = [
    *SECRETS,
    *IDS,
    "slack_api_url",
    "teams_openid_url",
    "teams_jwks_url",
    "teams_token_url",
    "twilio_api_url",
]


def settings_with(tmp_path: Path, channels: dict | None = None, **values) -> Settings:
    """Settings whose channel fields are all explicit (the caller's environment does not leak in), with a
    params file whose ``channels`` section is ``channels``."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["channels"] = {**params["channels"], **(channels or {})}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    blank = {name: SecretStr("") if name in SECRETS else "" for name in CHANNEL_FIELDS}
    typed = {k: SecretStr(v) if k in SECRETS else v for k, v in values.items()}
    return Settings(state_dir=tmp_path, params_file=params_file, **{**blank, **typed})


def test_without_credentials_only_rest_is_served_and_each_channel_says_what_it_lacks(tmp_path):
    statuses = write_credentials(settings_with(tmp_path, MAPS))
    written = yaml.safe_load(credentials_path(settings_with(tmp_path)).read_text())
    assert written == {"app.channels.rest.SwitchboardRestInput": {}}
    lines = {s.name: s.line("https://bot.example.com") for s in statuses}
    assert lines["rest"].endswith("on: https://bot.example.com/webhooks/rest/webhook")
    assert lines["slack"].endswith("off: set SWITCHBOARD_SLACK_BOT_TOKEN, SWITCHBOARD_SLACK_SIGNING_SECRET")
    assert lines["botframework"].endswith("off: set SWITCHBOARD_TEAMS_APP_ID, SWITCHBOARD_TEAMS_APP_PASSWORD")
    assert "SWITCHBOARD_PUBLIC_URL" in lines["twilio"]
    assert "SWITCHBOARD_VOICE_TRANSFER_NUMBER" in lines["twilio_voice"]
    assert all("\n" not in line for line in lines.values())


def test_configured_channels_are_written_with_secrets_as_references_only(tmp_path):
    settings = settings_with(tmp_path, MAPS, **SECRETS, **IDS, twilio_api_url="http://127.0.0.1:9/twilio")
    statuses = write_credentials(settings)
    path = credentials_path(settings)
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(status.on for status in statuses)
    for secret in SECRETS.values():
        assert secret not in text
    for variable in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TEAMS_APP_PASSWORD", "TWILIO_AUTH_TOKEN"):
        assert f": ${{SWITCHBOARD_{variable}}}\n" in text  # plain scalars: Rasa expands only those
    written = yaml.safe_load(text)
    assert list(written) == ["app.channels.rest.SwitchboardRestInput", *CHANNEL_CLASSES.values()]
    slack, teams, sms, voice = (
        written[CHANNEL_CLASSES[n]] for n in ("slack", "botframework", "twilio", "twilio_voice")
    )
    assert slack["workspaces"] == {"T0NORTHWND": "acme"} and "api_url" not in slack
    assert teams["app_id"] == IDS["teams_app_id"] and teams["service_urls"] == [
        "https://smba.trafficmanager.net/"
    ]
    assert sms["public_url"] == "https://bot.example.com" and sms["api_url"] == "http://127.0.0.1:9/twilio"
    assert voice["numbers"] == {"+15550100002": "globex"} and voice["transfer_number"] == "+15550100999"
    assert voice["assistant_voice"] == "Polly.Joanna" and "api_url" not in voice
    assert sms["source_links"]["acme"].startswith("https://") and sms["max_body_bytes"] == 65536


def test_a_channel_with_credentials_but_no_tenant_map_is_off(tmp_path):
    statuses = {s.name: s for s in write_credentials(settings_with(tmp_path, {}, **SECRETS, **IDS))}
    assert not statuses["slack"].on
    assert statuses["slack"].missing == "no workspace in params.yaml channels.slack.workspaces"
    assert not statuses["twilio_voice"].on and "channels.voice.numbers" in statuses["twilio_voice"].missing


def test_a_transfer_number_that_is_not_e164_keeps_voice_off(tmp_path):
    settings = settings_with(tmp_path, MAPS, **SECRETS, **{**IDS, "voice_transfer_number": "0800 123"})
    statuses = {s.name: s for s in write_credentials(settings)}
    assert statuses["twilio"].on and not statuses["twilio_voice"].on
    assert "E.164" in statuses["twilio_voice"].missing


@pytest.mark.parametrize(
    ("channels", "problem"),
    [
        ({"sms": {"numbers": {"5550100": "acme"}}}, "E.164"),
        ({"slack": {"workspaces": {"T1": "Not A Tenant"}}}, "invalid tenant id"),
        ({"source_links": {"acme": "help.example/{title}"}}, "http(s) URL"),
        ({"teams": {"tenant": {}}}, "Extra inputs"),
    ],
)
def test_an_invalid_channels_section_is_refused_with_its_place(tmp_path, channels, problem):
    with pytest.raises(ValueError, match="`channels`") as error:
        write_credentials(settings_with(tmp_path, channels))
    assert problem in str(error.value)


def test_the_launcher_serves_the_runs_credentials_file_and_passes_the_secrets(tmp_path):
    settings = settings_with(tmp_path, MAPS, **SECRETS, **IDS)
    stack = Stack(settings, services=("rasa",))
    [rasa] = stack._define()
    assert rasa.argv[rasa.argv.index("--credentials") + 1] == str(tmp_path / "credentials.yml")
    env = stack.env()
    assert env["SWITCHBOARD_SLACK_SIGNING_SECRET"] == SECRETS["slack_signing_secret"]
    assert env["SWITCHBOARD_TWILIO_AUTH_TOKEN"] == SECRETS["twilio_auth_token"]
