"""Every module of ``knowledge/`` and ``nlu/`` a ``dvc.yaml`` stage runs is one of its deps, so changing it reruns
the stage.

A stage whose output depends on code it does not list is skipped by ``dvc repro`` after that code changes: the
index keeps an answerability model fitted with the old stop words (``knowledge/grounding.py``), the bot-level
figures describe an embedding or retrieval the served bot no longer runs. The check follows the stage's entry
point (``python -m pipelines.X``) and every project module it lists as a dep (Rasa loads ``nlu/context.py`` and
``nlu/components`` by name from the config, so no import reaches them; what they import runs all the same) through
the project's import graph (``tests/test_imports.py``: every import statement, function-level ones too), and asks
of each ``knowledge/``, ``nlu/`` and ``app/`` module it reaches that a dep names it or a folder holding it: the
evaluation stages run the served code of ``app/`` (the router, the phrasing rules, the order-id parser), and a
figure that code no longer reproduces is a defect. :data:`NOT_OUTPUT` lists the modules that reach almost every
stage without changing what it writes; the check neither asks for them nor follows their imports.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from tests import dvc_yaml
from tests.test_imports import import_graph, module_files

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "knowledge", "nlu", "pipelines", "benchmarks")
CHECKED = ("knowledge/", "nlu/", "app/")
#: Modules every stage reaches that do not change what it writes, and why (their imports are not followed).
NOT_OUTPUT = {
    "app.settings": "the settings reader: the values it reads are the stages' `params:`",
    "app.offline": "environment flags that keep a process offline and quiet",
    "app.observability.logging": "what a process logs",
    "app.observability.metrics": "what a process counts for Prometheus",
    "app.observability.pii": "what a log line masks",
}


@functools.cache
def _graph() -> tuple[dict[str, set[str]], dict[str, Path]]:
    return import_graph(ROOT, PACKAGES), module_files(ROOT, PACKAGES)


@functools.cache
def started() -> dict[str, set[str]]:
    """Module -> the project modules it starts as processes, which no import statement shows: a string right after
    ``"-m"`` in a list or tuple (``[python, "-m", "nlu.rasa_cli", ...]``; a package's ``__main__``), or the first
    argument of ``run_in_rasa_env`` (the Rasa environment's ``python -m``)."""
    _, files = _graph()
    found: dict[str, set[str]] = {}
    for name, path in files.items():
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.List | ast.Tuple):
                values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
                names |= {
                    b for a, b in zip(values, values[1:], strict=False) if a == "-m" and isinstance(b, str)
                }
            elif _calls(node, "run_in_rasa_env") and isinstance(first := node.args[0], ast.Constant):
                names.add(str(first.value))
        modules = {m for n in names for m in (n, f"{n}.__main__") if m in files}
        if modules:
            found[name] = modules
    return found


def _calls(node: ast.AST, function: str) -> bool:
    """Whether ``node`` is a call of ``function`` (by name or attribute) with a positional argument."""
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", "")) == function
        and bool(node.args)
    )


def closure(*modules: str) -> set[str]:
    """Paths (relative to the project) of every project module ``modules`` run, themselves included: the import
    graph of ``tests/test_imports.py`` (every import statement, lazy ones too) and the modules each starts as a
    process (:func:`started`), followed from each up to the modules of :data:`NOT_OUTPUT`."""
    graph, files = _graph()
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen or name not in graph or name in NOT_OUTPUT:
            continue
        seen.add(name)
        todo.extend(graph[name])
        todo.extend(started().get(name, ()))
    return {files[name].relative_to(ROOT).as_posix() for name in seen}


def listed_modules(deps: list[str]) -> list[str]:
    """The project modules ``deps`` name, by file or by a folder holding them."""
    _, files = _graph()
    return [
        name
        for name, path in files.items()
        if any((rel := path.relative_to(ROOT).as_posix()) == dep or rel.startswith(dep + "/") for dep in deps)
    ]


def stages() -> dict[str, tuple[str, list[str]]]:
    """Each ``python -m`` stage of dvc.yaml: its entry module and its deps with ``${...}`` filled in."""
    found = {}
    for name, stage in dvc_yaml.spec()["stages"].items():
        command = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
        if entry := re.search(r"python -m ([\w.]+)", command):
            deps = [dvc_yaml.resolve(str(dep)).rstrip("/") for dep in stage.get("deps", [])]
            found[name] = (entry.group(1), deps)
    return found


STAGES = stages()


def test_the_import_closure_reaches_what_build_index_runs():
    reached = closure("pipelines.build_index")
    # the entry point, a module it imports, one imported by that, and one only a function imports
    assert {"pipelines/build_index.py", "knowledge/calibration.py", "knowledge/confidence.py"} <= reached
    assert "knowledge/grounding.py" in reached  # confidence imports its stop words inside a function
    assert not any(path.startswith(("tests/", ".venv")) for path in reached)


def test_the_closure_follows_the_modules_a_stage_lists():
    # train_nlu runs nlu/context.py only through Rasa's config; what context.py imports runs with it
    module, deps = STAGES["train_nlu"]
    assert "nlu.context" in listed_modules(deps)
    assert "knowledge/injection.py" not in closure(module)
    assert "knowledge/injection.py" in closure(module, *listed_modules(deps))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_project_module_a_stage_runs_is_a_dep(stage):
    module, deps = STAGES[stage]
    missing = sorted(
        path
        for path in closure(module, *listed_modules(deps))
        if path.startswith(CHECKED)
        and not path.endswith("__init__.py")
        and not any(path == dep or path.startswith(dep + "/") for dep in deps)
    )
    assert not missing, f"dvc.yaml stage {stage} runs {missing} without listing them in its deps"


def test_the_check_reaches_the_served_code_and_stops_at_the_settings_reader():
    reached = closure("pipelines.evaluate_bot")
    assert {"app/order_ids.py", "app/orchestration/router.py", "app/actions/phrasing.py"} <= reached
    assert "app/settings.py" not in closure("pipelines.export_encoder")
    assert not {"app/channels/turns.py", "app/identity.py"} & closure("pipelines.export_encoder")
    # Rasa runs in its own environment: train_nlu's `rasa train` is nlu/rasa_cli.py, started as `python -m`
    assert "nlu/rasa_cli.py" in closure("pipelines.train_nlu")
    # the stack starts its services as processes: the action server runs the actions
    assert {"nlu.rasa_cli"} <= started()["nlu.rasa_runner"] and "app.actions.server" in started()["app.stack"]
    assert "app/actions/server.py" in closure("app.stack")
