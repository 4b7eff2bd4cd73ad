from __future__ import annotations

from app.offline import OFFLINE_ENV, apply_offline_env
from app.settings import Settings


def test_defaults_are_loopback_and_sqlite(tmp_path):
    settings = Settings(state_dir=tmp_path)
    assert settings.host == "127.0.0.1"
    assert settings.webhook_url == "http://127.0.0.1:5005/webhooks/rest/webhook"
    assert settings.db_url == f"sqlite:///{tmp_path / 'switchboard.db'}"
    assert settings.tracker_db == str(tmp_path / "tracker.db")


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_RASA_PORT", "6000")
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/db")
    settings = Settings()
    assert settings.rasa_url == "http://127.0.0.1:6000"
    assert settings.db_url == "postgresql+psycopg://u@127.0.0.1/db"


def test_serve_params_come_from_params_yaml():
    serve = Settings().serve_params()
    assert {"knowledge_top_k", "knowledge_min_score", "max_message_chars"} <= set(serve)


def test_offline_env_never_overrides_explicit_values():
    env = apply_offline_env({"HF_HUB_OFFLINE": "0"})
    assert env["HF_HUB_OFFLINE"] == "0"
    assert all(env[k] == v for k, v in OFFLINE_ENV.items() if k != "HF_HUB_OFFLINE")


def test_params_sections_are_parsed_once_per_version_of_the_file_and_handed_out_as_copies(tmp_path):
    import os

    params = tmp_path / "params.yaml"
    params.write_text("serve: {knowledge_top_k: 3}\n")
    settings = Settings(params_file=params)
    first = settings.serve_params()
    first["knowledge_top_k"] = 99  # a caller changing its copy changes nothing for the next one
    assert settings.serve_params() == {"knowledge_top_k": 3}
    params.write_text("serve: {knowledge_top_k: 5}\n")
    os.utime(params, ns=(params.stat().st_atime_ns, params.stat().st_mtime_ns + 1_000_000))
    assert settings.serve_params() == {"knowledge_top_k": 5}  # an edited file is read again
    assert settings.params_section("missing") == {}
