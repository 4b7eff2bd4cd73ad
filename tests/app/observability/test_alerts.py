"""The alerting rules (app/observability/alerts.yml): promtool checks them and runs their unit tests; the
rules name metrics that exist, each alert is documented, and each is tested both firing and quiet.

promtool comes with Debian's ``prometheus`` package (``.ci/run`` installs it): the promtool tests skip
without it and fail under ``CI=true``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.gateway.config import load_params, parse_limit
from app.observability import metrics
from tests.conftest import required_command

ROOT = Path(__file__).resolve().parents[3]
OBSERVABILITY = ROOT / "app" / "observability"
RULES = OBSERVABILITY / "alerts.yml"
RULE_TESTS = OBSERVABILITY / "alerts.test.yml"
SCRAPE_CONFIG = OBSERVABILITY / "prometheus.yml"
DOCS = ROOT / "docs" / "alerts.md"
SEVERITIES = {"critical", "warning", "info"}


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def promtool() -> str:
    return required_command("promtool", package="prometheus")


def run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_accepts_the_scrape_config_and_its_rule_file(promtool: str) -> None:
    result = run(promtool, "check", "config", SCRAPE_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_fails_a_rule_that_does_not_behave_as_tested(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the 5xx threshold raised tenfold makes its firing case go quiet."""
    broken = RULES.read_text().replace(") > 0.05\n", ") > 0.5\n")
    assert broken != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(RULE_TESTS, tmp_path / "alerts.test.yml")
    result = run(promtool, "test", "rules", tmp_path / "alerts.test.yml")
    assert result.returncode != 0
    assert "GatewayHighErrorRate" in result.stdout + result.stderr


def test_every_alert_has_a_severity_summary_description_and_runbook() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key, "").strip(), f"{rule['alert']}: no {key}"
    assert {rule["labels"]["severity"] for rule in alerts()} == SEVERITIES


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    names = {rule["alert"] for rule in alerts()}
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert names - firing == set(), "never tested firing"
    assert names - quiet == set(), "never tested quiet"


def test_the_rules_use_only_metrics_the_services_export(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(metrics.STATE, "levels", dict)  # the degradation gauge is exported with a controller
    # the launcher's restart counts, exported by the gateway from the supervisor's state file
    state = tmp_path / "supervisor.json"
    state.write_text('{"services": {"actions": {"state": "running", "restarts": 1}}}')
    monkeypatch.setattr(metrics.SUPERVISOR, "state_file", state)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    exported = {
        family.name + suffix for family in metrics.REGISTRY.collect() for suffix in suffixes[family.type]
    }
    used = {name for rule in alerts() for name in re.findall(r"\bswitchboard_[a-z_]+", rule["expr"])}
    assert used - exported == set()


def test_the_ceiling_alert_uses_the_configured_tenant_limit() -> None:
    """TenantNearRateCeiling writes the ceiling as a number; it must be params.yaml's gateway.tenant_limit."""
    gateway = load_params(yaml.safe_load((ROOT / "params.yaml").read_text())["gateway"])
    limit = parse_limit(gateway.tenant_limit)
    per_minute = limit.amount * 60 / limit.get_expiry()
    rule = next(rule for rule in alerts() if rule["alert"] == "TenantNearRateCeiling")
    assert [float(n) for n in re.findall(r"0\.8 \* (\d+)", rule["expr"])] == [per_minute]
    assert f"{per_minute:g} turns" in rule["annotations"]["description"]


def test_every_alert_is_in_the_docs_table() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \|", DOCS.read_text(), flags=re.MULTILINE))
    assert documented == {rule["alert"] for rule in alerts()}
