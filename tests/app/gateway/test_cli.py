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


# --- key issue | list | revoke ----------------------------------------------------------------------------

HASH_SECRET = "api-key-hash-secret-0123456789-abcdefgh"


@pytest.fixture
def key_env(monkeypatch, tmp_path):
    """A migrated store and the key-hash secret; returns the store's URL."""
    from app.data.db import upgrade

    url = f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(url)
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", url)
    monkeypatch.setenv("SWITCHBOARD_API_KEY_SECRET", HASH_SECRET)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_key_issue_prints_the_key_alone_and_it_is_then_listed_and_revocable(key_env, capsys):
    from app.data.db import get_engine
    from app.gateway.keys import KEY_PATTERN, ApiKeyStore

    issue = ["key", "issue", "--tenant", "acme", "--client", "billing", "--plan", "pro", "--name", "Billing"]
    assert main(issue) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert out.count("\n") == 1 and key.startswith("sbk_")
    found = ApiKeyStore(get_engine(key_env), HASH_SECRET).find(key)
    assert (found.tenant_id, found.user_id, found.plan, found.name) == ("acme", "billing", "pro", "Billing")
    assert found.key_id in err and "only time" in err and key not in err

    assert main(["key", "list", "--tenant", "acme"]) == 0
    listed = capsys.readouterr().out
    assert found.key_id in listed and "Billing" in listed and KEY_PATTERN.match(key)["secret"] not in listed
    assert main(["key", "list", "--tenant", "globex"]) == 0
    assert capsys.readouterr().out.strip() == "no API keys"

    assert main(["key", "revoke", "--tenant", "acme", "--key-id", found.key_id]) == 0
    assert capsys.readouterr().out.startswith(f"revoked API key {found.key_id}")
    assert main(["key", "revoke", "--tenant", "acme", "--key-id", found.key_id]) == 0
    assert "already revoked" in capsys.readouterr().out
    assert ApiKeyStore(get_engine(key_env), HASH_SECRET).find(key).revoked


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["issue", "--tenant", "acme", "--client", "b", "--plan", "gold", "--name", "n"],
            "unknown plan 'gold'",
        ),
        (["issue", "--tenant", "Acme", "--client", "b", "--plan", "pro", "--name", "n"], "invalid tenant"),
        (["issue", "--tenant", "acme", "--client", "b c", "--plan", "pro", "--name", "n"], "invalid client"),
        (["revoke", "--tenant", "acme", "--key-id", "0123456789ab"], "no API key '0123456789ab' in tenant"),
        (["revoke", "--tenant", "acme"], "--key-id"),
        (["list"], "--tenant"),
    ],
)
def test_key_commands_refuse_bad_input_with_one_line_and_exit_2(key_env, capsys, args, message):
    try:
        code = main(["key", *args])
    except SystemExit as exited:  # argparse's usage errors
        code = exited.code
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and message in captured.err
    assert captured.err.count("\n") == 1


def test_issuing_without_the_hash_secret_is_refused(key_env, monkeypatch, capsys):
    monkeypatch.setenv("SWITCHBOARD_API_KEY_SECRET", "")
    get_settings.cache_clear()
    assert main(["key", "issue", "--tenant", "acme", "--client", "b", "--plan", "pro", "--name", "n"]) == 2
    assert "SWITCHBOARD_API_KEY_SECRET must be set" in capsys.readouterr().err


def test_an_unusable_store_is_exit_1_with_one_line(key_env, tmp_path, capsys):
    missing = f"sqlite:///{tmp_path / 'nowhere.db'}"
    assert main(["key", "list", "--tenant", "acme", "--url", missing]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no database at") and err.count("\n") == 1
    assert not (tmp_path / "nowhere.db").exists()  # nothing created

    import sqlite3

    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE unrelated (x)").connection.close()
    assert main(["key", "list", "--tenant", "acme", "--url", f"sqlite:///{tmp_path / 'other.db'}"]) == 1
    err = capsys.readouterr().err
    assert "no such table: api_keys" in err and "app.data migrate" in err and err.count("\n") == 1


def test_the_token_command_adds_the_configured_audience_and_issuer(secret_env, monkeypatch, capsys):
    monkeypatch.setenv("SWITCHBOARD_JWT_AUDIENCE", "switchboard")
    monkeypatch.setenv("SWITCHBOARD_JWT_ISSUER", "switchboard-dev")
    get_settings.cache_clear()
    assert main(["token", "--tenant", "acme", "--user", "alice", "--plan", "pro"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), SECRET, algorithms=["HS256"], audience="switchboard")
    assert claims["iss"] == "switchboard-dev"
