"""The launcher's canary: a rasa-canary service only with a challenger model and a share above 0."""

from __future__ import annotations

import yaml

from app.settings import Settings
from app.stack import Stack


def settings_for(tmp_path, flags: dict, challenger: bool = True) -> Settings:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"flags": flags, "serve": {}}))
    model = tmp_path / "challenger.tar.gz"
    if challenger:
        model.write_bytes(b"model")
    return Settings(state_dir=tmp_path, params_file=params, challenger_model_path=model, canary_port=5999)


def test_no_canary_without_a_share_or_a_challenger_model(tmp_path):
    assert not Stack(settings_for(tmp_path, {"defaults": {"challenger_percent": 0}})).canary
    (tmp_path / "challenger.tar.gz").unlink()
    assert not Stack(
        settings_for(tmp_path, {"defaults": {"challenger_percent": 10}}, challenger=False)
    ).canary


def test_a_tenant_share_starts_the_canary_server_and_points_the_gateway_at_it(tmp_path):
    stack = Stack(settings_for(tmp_path, {"defaults": {}, "tenants": {"globex": {"challenger_percent": 5}}}))
    assert stack.canary
    names = [s.name for s in stack._define()]
    assert names.index("rasa") < names.index("rasa-canary") < names.index("gateway")
    canary = next(s for s in stack._define() if s.name == "rasa-canary")
    assert str(tmp_path / "challenger.tar.gz") in canary.argv and "5999" in canary.argv
    assert stack.env()["SWITCHBOARD_GATEWAY_CANARY_UPSTREAMS"] == "http://127.0.0.1:5999"


def test_the_canary_needs_the_gateway_to_route_users(tmp_path):
    stack = Stack(settings_for(tmp_path, {"defaults": {"challenger_percent": 50}}), services=("rasa",))
    assert not stack.canary and "rasa-canary" not in [s.name for s in stack._define()]
