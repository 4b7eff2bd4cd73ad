"""Shared fixtures: the socket guard, offline env, the pipeline run in a temporary copy, the running bot."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUARD_DIR = Path(__file__).resolve().parent / "guard"
sys.path.insert(0, str(GUARD_DIR))

import socket_guard  # noqa: E402

from app.offline import apply_offline_env  # noqa: E402

socket_guard.install()
apply_offline_env()


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """``get_settings()`` read again in this test (so its ``monkeypatch.setenv`` or ``chdir`` counts) and after
    it (so the test's environment does not leak into the next one)."""
    from app.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def required_command(*names: str, package: str) -> str:
    """The path of the first of ``names`` on PATH (a tool from Debian's ``package``, which ``.ci/run`` installs);
    skips the test without it, fails it under ``CI=true``."""
    path = next(filter(None, map(shutil.which, names)), None)
    if path is None:
        reason = f"{names[0]} not found (apt-get install --no-install-recommends {package})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: required under CI")
        pytest.skip(reason)
    return path


def free_port() -> int:
    """A loopback port for a server a test starts (the app's one definition: outside the ephemeral range)."""
    from app.scaleout import free_port as _free_port

    return _free_port("127.0.0.1")


def guarded_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for processes the tests start: offline, socket guard installed, repo importable."""
    env = apply_offline_env(dict(os.environ))
    env["PYTHONPATH"] = os.pathsep.join([str(GUARD_DIR), str(ROOT)])
    env["PATH"] = os.pathsep.join([str(ROOT / ".venv" / "bin"), env.get("PATH", "")])
    env["SWITCHBOARD_RASA_PYTHON"] = str(ROOT / ".venv-rasa" / "bin" / "python")
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(extra or {})
    return env


def start_guarded(stack: object, timeout: float) -> None:
    """``stack.start(timeout)`` with the socket guard first on every server's PYTHONPATH (the stack puts the
    repository after it), so each process the tests start refuses non-loopback connections too."""
    old_pythonpath = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(GUARD_DIR)
    try:
        stack.start(timeout=timeout)  # type: ignore[attr-defined]
    finally:
        if old_pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_pythonpath


def copy_project(dest: Path) -> Path:
    """Copy the tracked and untracked-but-not-ignored files of the repository (what a clone would have,
    plus work in progress) into ``dest`` and make it a git repository of its own."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.email=tests@switchboard.invalid", "-c", "user.name=tests"]
    subprocess.run([*git, "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "test copy"], cwd=dest, check=True)
    return dest


#: The conversations ``make test``'s pipeline run plays through the served stack (``dvc repro`` on a clone
#: plays them all): out-of-scope handled right in two of them, so a rule that breaks it shows (test_bot_gate).
TEST_SLICE = ["acme-out-of-scope-mix", "acme-idk-teacher-discount-weather", "acme-track-id-given-later",
              "globex-estimated-reading-and-faulty-meter"]  # fmt: skip


#: The fine-tuned encoder's fast setting for ``make test``'s pipeline run: a few steps (the figures are not
#: the point there; that the stage trains, exports and is served is).
TEST_FINETUNE = {"max_steps": 4}


def use_test_slice(params_file: Path) -> None:
    """Make a project copy's ``evaluate_bot`` play :data:`TEST_SLICE` only and fine-tune for
    :data:`TEST_FINETUNE`'s few steps (``make test`` stays fast)."""
    import yaml

    params = yaml.safe_load(params_file.read_text())
    for stage in ("evaluate_bot", "compare_policies"):
        params[stage] = {**params[stage], "ids": TEST_SLICE, "tags": [], "limit": 0}
    params["finetune_encoder"] = {**params["finetune_encoder"], **TEST_FINETUNE}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


@dataclass
class PipelineRun:
    root: Path
    first: subprocess.CompletedProcess
    second: subprocess.CompletedProcess
    env: dict[str, str]
    reused: bool = False


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """``dvc repro`` (twice) in a temporary copy of the project: trains, indexes and evaluates for real.

    For local iteration on tests that only need the built artifacts, ``SWITCHBOARD_TEST_PIPELINE_ROOT=DIR``
    reuses a project directory where ``dvc repro`` already ran (the pipeline's own tests then skip).
    """
    env = guarded_env()
    reuse = os.environ.get("SWITCHBOARD_TEST_PIPELINE_ROOT")
    if reuse:
        if os.environ.get("CI") == "true":
            pytest.fail("SWITCHBOARD_TEST_PIPELINE_ROOT is for local iteration; CI runs the pipeline itself")
        done = subprocess.CompletedProcess(["dvc", "repro"], 0, "reused", "")
        return PipelineRun(Path(reuse).resolve(), done, done, env, reused=True)
    root = copy_project(tmp_path_factory.mktemp("project"))
    use_test_slice(root / "params.yaml")
    first = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True, timeout=1200)
    if first.returncode != 0:
        pytest.fail(f"dvc repro failed ({first.returncode}):\n{first.stdout[-3000:]}\n{first.stderr[-5000:]}")
    second = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    return PipelineRun(root, first, second, env)


@pytest.fixture(scope="session")
def llm() -> Iterator[object]:
    """The local OpenAI-compatible test server (models ``small`` and ``large``), for the whole session."""
    from tests.llm_server import LLMTestServer

    with LLMTestServer() as server:
        yield server


def params_with_llm_tiers(base_url: str, dest: Path) -> Path:
    """A copy of params.yaml whose LLM tiers point at the test server (short breaker reset for tests)."""
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    tier = {"base_url": base_url, "timeout_s": 5, "price_in_per_1k": 0.5, "price_out_per_1k": 1.5}
    params["tiers"]["endpoints"] = {1: {**tier, "model": "small"}, 2: {**tier, "model": "large"}}
    params["tiers"]["retry"] = {"attempts": 1, "wait_initial_s": 0.1, "wait_max_s": 0.2}
    params["tiers"]["breaker"] = {"fail_max": 2, "reset_timeout_s": 3}
    dest.write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def start_bot(pipeline_root: Path, llm_base_url: str, state: Path, index_dir: Path | None = None) -> object:
    """The real Rasa server, action server and CRM service, started, serving the model the pipeline built in
    ``pipeline_root`` and ``index_dir`` (default: its index), with LLM tiers 1 and 2 on the test server."""
    from app.settings import Settings
    from app.stack import Stack

    settings = Settings(
        rasa_port=free_port(),
        action_port=free_port(),
        streamlit_port=free_port(),
        state_dir=state,
        model_path=pipeline_root / "nlu" / "serving" / "model.tar.gz",
        index_dir=index_dir or pipeline_root / "knowledge" / "index",
        params_file=params_with_llm_tiers(llm_base_url, state / "params.yaml"),
    )
    stack = Stack(settings, services=("crm", "actions", "rasa"))
    start_guarded(stack, timeout=240)
    return stack


@pytest.fixture(scope="session")
def bot(pipeline_run: PipelineRun, llm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The real Rasa server and action server, serving the model and index the pipeline just built, with
    LLM tiers 1 and 2 on the local test server."""
    stack = start_bot(pipeline_run.root, llm.base_url, tmp_path_factory.mktemp("state"))
    yield stack
    stack.stop()  # type: ignore[attr-defined]


def seed_order(
    stack: object, user: str, *, status: str = "shipped", carrier: str | None = "DHL", tenant: str = "acme"
) -> str:
    """A fresh order of ``user`` in the running stack's CRM (customers see only their own orders); its id."""
    import random
    from datetime import date

    from app.data.db import get_engine
    from app.data.seed import DemoOrder, DemoTenant, insert_missing

    order_id = f"ORD-{random.randint(60000, 99989)}"  # the seed and the conversation set stay below 60000
    tracking = f"JD0146{random.randint(10**7, 10**8 - 1)}" if carrier else None
    order = DemoOrder(order_id, user, status, carrier, tracking, date(2026, 12, 20), "42.00")
    customer = {"user_id": user, "name": user, "email": f"{user}@example.com"}
    insert_missing(get_engine(stack.settings.db_url), tenant, DemoTenant((customer,), (order,)))  # type: ignore[attr-defined]
    return order_id
