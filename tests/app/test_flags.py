"""Feature flags: params defaults, per-tenant and environment overrides, and the deterministic canary."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.flags import Flags, canary_bucket, choose_variant, in_canary
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def flags(env: dict[str, str] | None = None) -> Flags:
    return Flags(
        defaults={"degradation_level": "auto", "challenger_percent": 5, "new_prompt": False},
        tenants={"globex": {"degradation_level": "reduced", "new_prompt": True}},
        env=env or {},
    )


def test_precedence_env_tenant_env_params_tenant_params_default() -> None:
    assert flags().get("degradation_level", "acme") == "auto"
    assert flags().get("degradation_level", "globex") == "reduced"
    assert flags().get("missing", "acme", default=7) == 7
    env = {"SWITCHBOARD_FLAG_DEGRADATION_LEVEL": "static"}
    assert flags(env).get("degradation_level", "globex") == "static"  # the operator's env wins over params
    env["SWITCHBOARD_FLAG_DEGRADATION_LEVEL__GLOBEX"] = "maintenance"
    assert flags(env).get("degradation_level", "globex") == "maintenance"
    assert flags(env).get("degradation_level", "acme") == "static"
    assert flags(env).get("degradation_level") == "static"


def test_env_values_are_typed_and_tenant_names_normalised() -> None:
    env = {"SWITCHBOARD_FLAG_CHALLENGER_PERCENT": "12.5", "SWITCHBOARD_FLAG_NEW_PROMPT__ACME_EU": "yes"}
    f = flags(env)
    assert f.percent("challenger_percent") == 12.5
    assert f.enabled("new_prompt", "acme-eu") and not f.enabled("new_prompt", "acme")
    assert f.enabled("new_prompt", "globex")


def test_bad_flags_are_refused() -> None:
    with pytest.raises(ValueError, match="lower_snake_case"):
        flags().get("Bad-Name")
    with pytest.raises(ValueError, match="between 0 and 100"):
        flags({"SWITCHBOARD_FLAG_CHALLENGER_PERCENT": "150"}).percent("challenger_percent")
    with pytest.raises(ValueError, match="percentage"):
        flags({"SWITCHBOARD_FLAG_CHALLENGER_PERCENT": "lots"}).percent("challenger_percent")
    with pytest.raises(ValueError, match="defaults"):
        Flags.from_params({"default": {}})


def test_the_repository_params_load() -> None:
    f = Flags.from_params(Settings(params_file=ROOT / "params.yaml").params_section("flags"), env={})
    assert f.get("degradation_level") == "auto"
    assert f.percent("challenger_percent") == 0


def test_canary_is_deterministic_per_user() -> None:
    users = [f"user-{i}" for i in range(5000)]
    first = [in_canary("acme", u, 10) for u in users]
    assert first == [in_canary("acme", u, 10) for u in users]
    share = sum(first) / len(users)
    assert 0.08 < share < 0.12
    assert canary_bucket("acme", "user-1") == canary_bucket("acme", "user-1")


def test_canary_edges_growth_and_salt() -> None:
    users = [f"u{i}" for i in range(2000)]
    assert not any(in_canary("acme", u, 0) for u in users)
    assert all(in_canary("acme", u, 100) for u in users)
    ten = {u for u in users if in_canary("acme", u, 10)}
    twenty = {u for u in users if in_canary("acme", u, 20)}
    assert ten < twenty  # raising the share only adds users
    other = {u for u in users if in_canary("acme", u, 10, salt="prompt-v2")}
    assert other != ten  # another experiment picks other users
    globex = {u for u in users if in_canary("globex", u, 10)}
    assert globex != ten  # tenants are bucketed independently


def test_choose_variant_and_bad_input() -> None:
    users = [f"u{i}" for i in range(200)]
    variants = {choose_variant("acme", u, 50, "model-v1", "model-v2") for u in users}
    assert variants == {"model-v1", "model-v2"}
    assert all(choose_variant("acme", u, 0, "model-v1", "model-v2") == "model-v1" for u in users)
    with pytest.raises(ValueError, match="between 0 and 100"):
        in_canary("acme", "u1", 101)
    with pytest.raises(ValueError, match="required"):
        in_canary("acme", "", 10)
