"""The launcher and security: Rasa's channel beyond loopback needs the channel secret, and the security
settings reach the processes that need them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import SecretStr

from app.scaleout import check_channel_exposure, is_loopback
from app.settings import Settings
from app.stack import Stack, StackError
from tests.conftest import ROOT, guarded_env

CHANNEL_SECRET = "channel-secret-0123456789abcdef"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("10.0.0.5", False), ("::", False), ("bot.internal", False)],
)  # fmt: skip
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_rasa_beyond_loopback_needs_the_channel_secret(tmp_path):
    check_channel_exposure(Settings(state_dir=tmp_path, host="127.0.0.1", channel_secret=SecretStr("")))
    with pytest.raises(StackError, match="SWITCHBOARD_CHANNEL_SECRET"):
        check_channel_exposure(Settings(state_dir=tmp_path, host="0.0.0.0", channel_secret=SecretStr("")))
    check_channel_exposure(
        Settings(state_dir=tmp_path, host="0.0.0.0", channel_secret=SecretStr(CHANNEL_SECRET))
    )


def test_the_launcher_refuses_an_exposed_channel_without_a_secret_before_starting_anything(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "app.stack", "--services", "rasa"],
        cwd=ROOT,
        env=guarded_env(
            {
                "SWITCHBOARD_STATE_DIR": str(tmp_path),
                "SWITCHBOARD_HOST": "0.0.0.0",
                "SWITCHBOARD_CHANNEL_SECRET": "",
            }
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and "SWITCHBOARD_CHANNEL_SECRET" in done.stderr
    assert done.stderr.count("\n") == 1 and "starting" not in done.stdout
    assert not (tmp_path / "logs").exists()


def test_the_security_settings_reach_the_processes(tmp_path):
    settings = Settings(
        state_dir=tmp_path,
        crm_port=5999,
        jwt_secret=SecretStr("j" * 32),
        jwt_audience="switchboard",
        jwt_issuer="https://idp.example.com/",
        api_key_secret=SecretStr("k" * 32),
        channel_secret=SecretStr(CHANNEL_SECRET),
    )
    env = Stack(settings, services=("gateway",)).env()
    assert env["SWITCHBOARD_JWT_AUDIENCE"] == "switchboard"
    assert env["SWITCHBOARD_JWT_ISSUER"] == "https://idp.example.com/"
    assert env["SWITCHBOARD_API_KEY_SECRET"] == "k" * 32
    assert env["SWITCHBOARD_CHANNEL_SECRET"] == CHANNEL_SECRET


def test_an_empty_security_setting_overrides_the_callers_environment(tmp_path, monkeypatch):
    """A stack whose settings turn a check off (e.g. a benchmark's gateway) is not turned back on by the
    shell's variables: the settings are what the processes get."""
    monkeypatch.setenv("SWITCHBOARD_JWT_AUDIENCE", "from-the-shell")
    monkeypatch.setenv("SWITCHBOARD_CHANNEL_SECRET", "shell-secret-0123456789")
    settings = Settings(state_dir=tmp_path, crm_port=5999).model_copy(
        update={"jwt_audience": "", "channel_secret": SecretStr("")}
    )
    env = Stack(settings, services=("gateway",)).env()
    assert env["SWITCHBOARD_JWT_AUDIENCE"] == "" and env["SWITCHBOARD_CHANNEL_SECRET"] == ""
