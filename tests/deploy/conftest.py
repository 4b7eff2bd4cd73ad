"""The deployment checks' tools (``.venv-deploy``, made by ``make setup`` from deploy/tools.lock) and the rendered
overlays. Without the tools these tests skip, except under ``CI=true`` where they fail."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import GUARD_DIR, ROOT

TOOLS = ROOT / ".venv-deploy" / "bin"
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("small", "production")


def tool(name: str) -> str:
    """The path of a deployment tool, or a skip (a failure under CI) saying how to get it."""
    path = TOOLS / name
    if not path.exists():
        reason = f"{path} not found: run `make setup` (deploy/tools.lock)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: required under CI")
        pytest.skip(reason)
    return str(path)


def run_tool(name: str, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a tool offline: the socket guard is on its PYTHONPATH (a Python tool that tries the network fails)."""
    env = {**os.environ, "PYTHONPATH": str(GUARD_DIR)}
    return subprocess.run(
        [tool(name), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


def render(folder: Path) -> str:
    """``kubectl kustomize`` of a kustomization folder (the ConfigMap reads params.yaml above it: no load
    restriction), as README "Deploying on Kubernetes" renders it."""
    done = run_tool("kubectl", "kustomize", "--load-restrictor", "LoadRestrictionsNone", folder)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    """Each overlay rendered once per session: overlay name -> YAML stream."""
    return {name: render(K8S / "overlays" / name) for name in OVERLAYS}


def documents(stream: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(stream) if doc]
