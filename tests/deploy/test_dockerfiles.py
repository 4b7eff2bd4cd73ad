"""The images' Dockerfiles (deploy/docker): hadolint finds nothing, each image is multi-stage, runs as an
unprivileged user and has a HEALTHCHECK on its service's health endpoint, every file it copies exists (or is a
pipeline output dvc.yaml declares) and is not kept out by .dockerignore, and the code it copies is enough to
import its service. No image is built here: these machines have no container daemon."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import dvc_yaml
from tests.conftest import ROOT
from tests.deploy.conftest import run_tool

DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
ROLES = {path.name.removesuffix(".Dockerfile") for path in DOCKERFILES}
# the module each image's command starts, imported from the files the image copies (Rasa's in its environment)
ENTRY = {
    "gateway": ["app.gateway.__main__", "app.gateway.app"],
    "actions": ["app.actions.server", "app.scaleout", "app.data.__main__", "knowledge.embeddings"],
    "crm": ["app.integrations.services.crm_service"],
    "recorder": ["app.analytics.recorder"],
    "streamlit": ["app.ui.chat_client", "app.analytics.loaders", "app.integrations.notifications"],
    "rasa": [
        "nlu.rasa_cli",
        "app.channels.rest",
        "app.channels.lock_store",
        "nlu.components.onnx_featurizer",
        "nlu.components.sentence_classifier",
        "nlu.components.language",
        "nlu.components.context_policy",
    ],
}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """A Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            found.append(Instruction(keyword.upper(), args.strip()))
    return found


def copied_sources(text: str) -> list[str]:
    """The build-context paths (or globs) a Dockerfile's COPY/ADD instructions read (not --from=stage copies)."""
    sources = []
    for ins in instructions(text):
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        words = ins.args.split()
        if any(word.startswith("--from") for word in words):
            continue
        paths = [word for word in words if not word.startswith("--")]
        sources += paths[:-1]
    return sources


def pipeline_outputs() -> set[str]:
    """The paths dvc.yaml's stages write (``outs``), its ``${paths.x}`` variables resolved."""
    outs = set()
    for stage in dvc_yaml.spec(ROOT)["stages"].values():
        for out in stage.get("outs", []):
            name = next(iter(out)) if isinstance(out, dict) else out
            outs.add(dvc_yaml.resolve(name, ROOT).rstrip("/"))
    return outs


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (or a folder above it) out of the build context."""
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, pattern) or fnmatch.fnmatch(prefix.split("/")[-1], bare):
                return True
    return False


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def copy_problems(text: str) -> list[str]:
    """What a Dockerfile copies that a build would not find: neither in the repository nor a pipeline output,
    or kept out by .dockerignore."""
    problems, outs, patterns = [], pipeline_outputs(), dockerignore()
    for source in copied_sources(text):
        clean = source.rstrip("/")
        matches = list(ROOT.glob(clean))
        if not matches and clean not in outs:
            problems.append(f"{source}: not in the repository and no dvc.yaml output")
        if ignored(clean, patterns):
            problems.append(f"{source}: kept out of the build context by .dockerignore")
    return problems


def test_there_is_a_dockerfile_per_service_role():
    roles = {"rasa", "actions", "gateway", "crm", "recorder", "streamlit"}
    assert roles == ROLES
    assert set(ENTRY) == ROLES


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(path: Path):
    done = run_tool("hadolint", "--no-color", "--failure-threshold", "warning", path, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_refuses_a_bad_dockerfile(tmp_path: Path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nWORKDIR app\nRUN sudo pip install requests\n")
    done = run_tool("hadolint", "--no-color", "--failure-threshold", "warning", bad, timeout=60)
    assert done.returncode != 0
    for rule in ("DL3007", "DL3000", "DL3004"):  # latest tag; relative WORKDIR; sudo
        assert rule in done.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_is_multi_stage_unprivileged_and_checks_its_health(path: Path):
    steps = instructions(path.read_text())
    froms = [ins.args for ins in steps if ins.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: the build tools stay in the build stage"
    assert all(":" in image.split()[0] and not image.split()[0].endswith(":latest") for image in froms)
    users = [ins.args for ins in steps if ins.keyword == "USER"]
    assert users and users[-1] not in {"0", "root"}, "the last USER runs the service: not root"
    last_from = max(i for i, ins in enumerate(steps) if ins.keyword == "FROM")
    assert any(ins.keyword == "HEALTHCHECK" for ins in steps[last_from:])
    assert steps[-1].keyword == "CMD"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_file_exists_or_is_a_pipeline_output(path: Path):
    assert copy_problems(path.read_text()) == []


def test_a_missing_or_ignored_source_is_reported():
    text = "FROM x:1 AS build\nFROM x:1\nCOPY app/ nowhere/ app/\nCOPY nlu/models/x.tar.gz ./\nCOPY --from=build /a /a\n"
    assert copy_problems(text) == [
        "nowhere/: not in the repository and no dvc.yaml output",
        "nlu/models/x.tar.gz: not in the repository and no dvc.yaml output",
        "nlu/models/x.tar.gz: kept out of the build context by .dockerignore",
    ]


def materialise(text: str, dest: Path) -> None:
    """Copy what a Dockerfile copies from the repository into ``dest`` (code only: pipeline outputs that are
    not built here are left out, the import does not need them)."""
    for source in copied_sources(text):
        if source.endswith((".lock", ".tar.gz")):
            continue
        for match in ROOT.glob(source.rstrip("/")):
            target = dest / match.relative_to(ROOT)
            if match.is_dir():
                shutil.copytree(
                    match, target, ignore=shutil.ignore_patterns("__pycache__", "index", "results")
                )
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(match, target)


@pytest.mark.slow
@pytest.mark.parametrize("role", sorted(ENTRY))
def test_the_copied_code_is_enough_to_import_the_service(role: str, tmp_path: Path):
    """The image's code, alone on the path, imports its service's modules; each from the copy, not the repo."""
    materialise((DOCKER / f"{role}.Dockerfile").read_text(), tmp_path)
    python = ROOT / ".venv-rasa" / "bin" / "python" if role == "rasa" else Path(sys.executable)
    if not python.exists():
        pytest.skip(f"{python} not found: run `make setup`")
    script = (
        "import importlib, sys\n"
        f"for name in {ENTRY[role]!r}: importlib.import_module(name)\n"
        "ours = ('app', 'nlu', 'knowledge', 'pipelines')\n"
        "elsewhere = sorted(m.__name__ for m in list(sys.modules.values()) if m.__name__.split('.')[0] in ours"
        f" and getattr(m, '__file__', None) and not m.__file__.startswith({str(tmp_path)!r}))\n"
        "assert not elsewhere, f'imported from outside the image: {elsewhere}'\n"
    )
    done = subprocess.run(
        [str(python), "-c", script],
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(tmp_path),
            "HOME": str(tmp_path),
            "HF_HUB_OFFLINE": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
