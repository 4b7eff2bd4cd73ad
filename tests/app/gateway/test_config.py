"""The gateway's configuration: params.yaml's section, secrets from the environment, clear errors."""

from __future__ import annotations

import pytest
import yaml
from pydantic import SecretStr

from app.gateway.config import ConfigError, GatewayConfig, gateway_params, load_params
from app.settings import Settings
from tests.app.gateway.conftest import SECRET


def test_the_repository_params_define_the_three_plans_and_a_tenant_ceiling():
    params = gateway_params(Settings())
    assert set(params.plans) == {"free", "pro", "enterprise"}
    assert params.storage_url == "memory://" and params.demo_plan in params.plans


def test_from_settings_takes_upstreams_secret_and_storage_override(tmp_path):
    settings = Settings(
        state_dir=tmp_path,
        jwt_secret=SecretStr(SECRET),
        gateway_upstreams="http://127.0.0.1:7001/, http://127.0.0.1:7002",
        gateway_storage_url="redis://127.0.0.1:6379/3",
    )
    config = GatewayConfig.from_settings(settings)
    assert config.upstreams == ["http://127.0.0.1:7001", "http://127.0.0.1:7002"]
    assert config.params.storage_url == "redis://127.0.0.1:6379/3"
    assert SECRET not in repr(config)
    assert GatewayConfig.from_settings(settings, upstreams=["http://127.0.0.1:9"]).upstreams == [
        "http://127.0.0.1:9"
    ]


def test_rs256_only_gateway_reads_the_public_key_file(tmp_path):
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\n...\n")
    config = GatewayConfig.from_settings(Settings(jwt_public_key_file=str(pem), jwt_secret=SecretStr("")))
    assert config.jwt_public_key.startswith("-----BEGIN") and config.jwt_secret == ""
    with pytest.raises(ConfigError, match="cannot read the JWT public key"):
        GatewayConfig.from_settings(Settings(jwt_public_key_file=str(tmp_path / "missing.pem")))


@pytest.mark.parametrize(
    ("secret", "message"),
    [("", "no token key"), ("short", "too short")],
)
def test_missing_or_short_secret_is_a_config_error(secret, message):
    with pytest.raises(ConfigError, match=message):
        GatewayConfig.from_settings(Settings(jwt_secret=SecretStr(secret)))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"plans": {"free": "ten a minute"}}, "invalid rate limit"),
        ({"plans": {}}, "at least one plan"),
        ({"tenant_limit": "lots"}, "invalid rate limit"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_bad_params_sections_name_the_problem(section, message):
    with pytest.raises(ConfigError, match=message):
        load_params(section)


def test_bad_params_file_is_a_config_error(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump({"gateway": {"plans": {"free": "nope"}}}))
    with pytest.raises(ConfigError, match="gateway"):
        gateway_params(Settings(params_file=bad))
    with pytest.raises(ConfigError, match="cannot read"):
        gateway_params(Settings(params_file=tmp_path / "missing.yaml"))


def test_from_settings_takes_the_security_settings_and_never_shows_the_secrets(tmp_path):
    settings = Settings(
        state_dir=tmp_path,
        jwt_secret=SecretStr(SECRET),
        jwt_audience="switchboard",
        jwt_issuer="https://idp.example.com/",
        api_key_secret=SecretStr("k" * 32),
        channel_secret=SecretStr("c" * 16),
    )
    config = GatewayConfig.from_settings(settings)
    assert (config.jwt_audience, config.jwt_issuer) == ("switchboard", "https://idp.example.com/")
    assert (config.api_key_secret, config.channel_secret) == ("k" * 32, "c" * 16)
    assert config.api_key_store_url == settings.db_url
    assert "k" * 32 not in repr(config) and "c" * 16 not in repr(config)


def test_api_keys_alone_are_enough_to_run_a_gateway(tmp_path):
    config = GatewayConfig.from_settings(
        Settings(state_dir=tmp_path, jwt_secret=SecretStr(""), api_key_secret=SecretStr("k" * 32))
    )
    assert config.jwt_secret == "" and config.api_key_secret == "k" * 32


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("api_key_secret", "short", "SWITCHBOARD_API_KEY_SECRET is too short"),
        ("channel_secret", "short", "SWITCHBOARD_CHANNEL_SECRET is too short"),
    ],
)
def test_short_security_secrets_are_config_errors(tmp_path, field, value, message):
    settings = Settings(state_dir=tmp_path, jwt_secret=SecretStr(SECRET), **{field: SecretStr(value)})
    with pytest.raises(ConfigError, match=message):
        GatewayConfig.from_settings(settings)
