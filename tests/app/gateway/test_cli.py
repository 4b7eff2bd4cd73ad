"""``python -m app.gateway``: the token command and the refusals of bad input (exit 2, one line)."""

from __future__ import annotations

import subprocess
import sys

import jwt
import pytest

from app.gateway.__main__ import main
from app.settings import get_settings
from tests.app.gateway.conftest import SECRET
from tests.conftest import ROOT, guarded_env


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_JWT_SECRET", SECRET)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_token_prints_a_verifiable_token(secret_env, capsys):
    assert main(["token", "--tenant", "acme", "--user", "alice", "--plan", "pro", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["tenant"], claims["plan"]) == ("alice", "acme", "pro")
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "acme", "--user", "alice", "--plan", "gold"], "unknown plan 'gold'"),
        (["--tenant", "Acme!", "--user", "alice", "--plan", "pro"], "invalid tenant"),
        (["--tenant", "acme", "--user", "a b", "--plan", "pro"], "invalid user"),
        (["--tenant", "acme", "--user", "alice", "--plan", "pro", "--ttl", "-5"], "invalid ttl"),
    ],
)
def test_token_refuses_bad_input_with_one_line_and_exit_2(secret_env, capsys, args, message):
    assert main(["token", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and message in captured.err
    assert captured.err.count("\n") == 1


def test_usage_errors_are_one_line_and_exit_2(secret_env, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["token", "--tenant", "acme"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--user" in err


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.gateway", *args],
        cwd=ROOT,
        env=guarded_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_secret_token_and_serve_refuse_to_run():
    for args in (("token", "--tenant", "acme", "--user", "alice", "--plan", "pro"), ("serve", "--port", "1")):
        done = run_cli(*args, SWITCHBOARD_JWT_SECRET="")
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert done.stderr.startswith("error: ") and "SWITCHBOARD_JWT_SECRET" in done.stderr
        assert done.stderr.count("\n") == 1


def test_entry_point_mints_a_token():
    done = run_cli(
        "token", "--tenant", "acme", "--user", "bob", "--plan", "free", SWITCHBOARD_JWT_SECRET=SECRET
    )
    assert done.returncode == 0, done.stderr
    assert jwt.decode(done.stdout.strip(), SECRET, algorithms=["HS256"])["sub"] == "bob"
