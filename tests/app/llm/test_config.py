"""The ``tiers`` section: validation, unavailable tiers, prices."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from app.llm.config import TierConfig, TiersConfig, load_tiers_config
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_the_repository_params_load() -> None:
    config = Settings(params_file=ROOT / "params.yaml").section("tiers", TiersConfig)
    assert config.available()[0] == 0
    assert config.retry.attempts >= 1 and config.breaker.fail_max >= 1


def test_unconfigured_tiers_are_unavailable() -> None:
    config = load_tiers_config(section={"endpoints": {1: None, 2: {"base_url": "", "model": "large"}}})
    assert config.available() == [0]
    config = load_tiers_config(
        section={"endpoints": {2: {"base_url": "http://127.0.0.1:9/v1", "model": "large"}}}
    )
    assert config.available() == [0, 2]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"endpoints": {3: {"base_url": "http://x/v1", "model": "m"}}}, "LLM tiers are"),
        ({"endpoints": {1: {"base_url": "ftp://x", "model": "m"}}}, "http://"),
        ({"endpoints": {1: {"base_url": "http://x/v1", "model": "m", "timeout_s": 0}}}, "timeout_s"),
        (
            {"endpoints": {1: {"base_url": "http://x/v1", "model": "m", "price_in_per_1k": -1}}},
            "price_in_per_1k",
        ),
        ({"retry": {"attempts": 0}}, "attempts"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_sections_are_refused_clearly(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match="invalid `tiers` section") as caught:
        load_tiers_config(section=section)
    assert message in str(caught.value)


def test_cost_and_api_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tier = TierConfig(base_url="http://127.0.0.1:1/v1/", model="m", price_in_per_1k=Decimal("0.15"),
                      price_out_per_1k=Decimal("0.6"), api_key_env="TIER_KEY")  # fmt: skip
    assert tier.base_url == "http://127.0.0.1:1/v1"
    assert tier.cost(1000, 500) == Decimal("0.45")
    assert tier.api_key() == "not-needed"
    monkeypatch.setenv("TIER_KEY", "k")
    assert tier.api_key() == "k"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"tiers": {"endpoints": {1: tier.model_dump(mode="json")}}}))
    assert Settings(params_file=params).section("tiers", TiersConfig).endpoints[1] == tier
