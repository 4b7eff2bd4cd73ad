"""Every module of ``knowledge/`` a ``dvc.yaml`` stage runs is one of its deps, so changing it reruns the stage.

A stage whose output depends on code it does not list is skipped by ``dvc repro`` after that code changes: the
index keeps an answerability model fitted with the old stop words (``knowledge/grounding.py``), the bot-level
figures describe an embedding or retrieval the served bot no longer runs. The check follows the stage's entry
point (``python -m pipelines.X``) through every import of the project's packages (static: module-level and
function-level ``import`` statements, relative ones resolved), and asks of each ``knowledge/`` module it reaches
that a dep names it or a folder holding it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "knowledge", "nlu", "pipelines", "benchmarks")
CHECKED = "knowledge/"


def module_file(module: str) -> Path | None:
    """The file of a project module (``knowledge.retrieval`` -> knowledge/retrieval.py), None for others."""
    path = ROOT.joinpath(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imported(path: Path) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` yields ``a`` and ``a.b``: b may be a module)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def closure(module: str) -> set[str]:
    """Paths (relative to the project) of every project module ``module`` runs, itself included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        path = module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(imported(path))
    return {path.relative_to(ROOT).as_posix() for path in seen}


def stages() -> dict[str, tuple[str, list[str]]]:
    """Each ``python -m`` stage of dvc.yaml: its entry module and its deps with ``${...}`` filled in (params.yaml
    and the file's ``vars``)."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    variables: dict[str, object] = dict(
        yaml.safe_load((ROOT / "params.yaml").read_text())
    )  # DVC's default vars
    for entry in pipeline.get("vars", []):
        if isinstance(entry, dict):
            variables.update(entry)

    def fill(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            current: object = variables
            for key in match.group(1).split("."):
                current = current[key]  # type: ignore[index]
            return str(current)

        return re.sub(r"\$\{([\w.]+)\}", value, text)

    found = {}
    for name, stage in pipeline["stages"].items():
        command = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
        if entry := re.search(r"python -m ([\w.]+)", command):
            found[name] = (entry.group(1), [fill(str(dep)).rstrip("/") for dep in stage.get("deps", [])])
    return found


STAGES = stages()


def test_the_import_closure_reaches_what_build_index_runs():
    reached = closure("pipelines.build_index")
    # the entry point, a module it imports, one imported by that, and one only a function imports
    assert {"pipelines/build_index.py", "knowledge/calibration.py", "knowledge/confidence.py"} <= reached
    assert "knowledge/grounding.py" in reached  # confidence imports its stop words inside a function
    assert not any(path.startswith(("tests/", ".venv")) for path in reached)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_knowledge_module_a_stage_runs_is_a_dep(stage):
    module, deps = STAGES[stage]
    missing = sorted(
        path
        for path in closure(module)
        if path.startswith(CHECKED)
        and not path.endswith("__init__.py")
        and not any(path == dep or path.startswith(dep + "/") for dep in deps)
    )
    assert not missing, f"dvc.yaml stage {stage} runs {missing} without listing them in its deps"
