"""One settings reader per environment (issue 9): only the settings modules parse params.yaml, and the
process environment is read only where it must be. A static check of ``app/``, ``pipelines/`` and ``nlu/``
(``knowledge/`` is checked by its owner), with ``ast``: anyone can run it, and a new reader fails it.

Everything else asks the settings: ``get_settings().section("router", RouterConfig)``, ``.environ()``,
``.secret(name)`` in the main environment, ``app/channels/settings.py`` in the Rasa one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WALKED = ("app", "pipelines", "nlu")

# Modules that may read the process environment (os.environ, os.getenv, ...), and why.
ENV_READERS = {
    "app/settings.py": "the main environment's settings: fields, .env, and variables named by data",
    "app/channels/settings.py": "the Rasa environment's settings (pydantic 1 cannot import app/settings.py)",
    "app/offline.py": "the offline switch: sets HF_HUB_OFFLINE & co. before libraries read them",
    "app/stack.py": "the launcher builds its children's environments from its own",
    "app/observability/metrics.py": "sets PROMETHEUS_MULTIPROC_DIR for worker processes (prometheus_client's "
    "multiprocess protocol: the workers read it on import)",
}

# Modules that may parse params.yaml.
PARAMS_READERS = {"app/settings.py": "parses it once per version of the file, for everyone"}

# Other YAML files, read where they belong: (module, function) -> what it reads.
OTHER_YAML = {
    ("app/flags.py", "_parse"): "one flag override's value (YAML scalars: 12.5, yes, ...)",
    ("app/scaleout.py", "endpoints_config"): "nlu/endpoints.yml, Rasa's endpoints template",
    ("app/scaleout.py", "credentials_config"): "nlu/credentials.yml, Rasa's channels template",
    ("app/analytics/results.py", "ResultPaths.from_root"): "dvc.yaml, for the pipeline's result paths",
    ("nlu/training.py", "render_config"): "nlu/configs/*.yml, a Rasa pipeline config",
    ("nlu/training.py", "uses_encoder"): "a rendered Rasa pipeline config",
    ("nlu/data_checks.py", "_compose"): "Rasa training data files",
    (
        "nlu/finetune.py",
        "_pipeline",
    ): "nlu/configs/*.yml, a Rasa config (the encoder kind, the entity head, the calibration share)",
    ("nlu/finetune.py", "read_annotated"): "a Rasa NLU training data file (the fine-tuning examples)",
    ("app/evaluation/conversations.py", "load"): "a bot-level conversation set (nlu/conversations/*.yml)",
    ("app/evaluation/conversations.py", "domain_intents"): "nlu/domain.yml, Rasa's domain",
    (
        "app/actions/server.py",
        "description",
    ): "app/actions/openapi.yaml, the action server's OpenAPI description",
    (
        "app/channels/rest.py",
        "SwitchboardRestInput.blueprint",
    ): "app/channels/openapi.yaml, the channel's OpenAPI",
}

ENV_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
YAML_LOADERS = {"safe_load", "safe_load_all", "load", "load_all", "full_load", "full_load_all", "unsafe_load",
                "unsafe_load_all", "compose", "compose_all", "parse"}  # fmt: skip
FILE_READS = {"read_text", "read_bytes", "open"}


def _mentions_params(node: ast.AST) -> bool:
    """Whether an expression names a params file: an identifier with "params" in it, or a "params.yaml"."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and "params" in sub.id.lower():
            return True
        if isinstance(sub, ast.Attribute) and "params" in sub.attr.lower():
            return True
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and "params.y" in sub.value:
            return True
    return False


class _Readers(ast.NodeVisitor):
    """Collects environment reads, YAML parses and reads of a params file, each with its function."""

    def __init__(self) -> None:
        self.os_names: set[str] = set()  # names bound to the os module
        self.yaml_names: set[str] = set()  # names bound to the yaml module
        self.yaml_functions: set[str] = set()  # loaders imported by name (from yaml import safe_load)
        self.scope: list[str] = []
        self.env: list[tuple[int, str]] = []
        self.yaml: list[tuple[int, str, bool]] = []  # (line, function, mentions params)
        self.params_reads: list[int] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "os":
                self.os_names.add(alias.asname or "os")
            elif alias.name == "yaml":
                self.yaml_names.add(alias.asname or "yaml")
            elif alias.name.startswith("ruamel"):
                self.yaml.append((node.lineno, self.function, False))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = {alias.name: alias.asname or alias.name for alias in node.names}
        if node.module == "os" and ENV_NAMES & set(names):
            self.env.append((node.lineno, f"from os import {', '.join(sorted(ENV_NAMES & set(names)))}"))
        elif node.module == "yaml":
            self.yaml_functions |= {local for name, local in names.items() if name in YAML_LOADERS}
        elif (node.module or "").startswith("ruamel") or (
            node.module == "dvc.api" and "params_show" in names
        ):
            self.yaml.append((node.lineno, self.function, True))

    @property
    def function(self) -> str:
        return ".".join(self.scope) or "<module>"

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.os_names and node.attr in ENV_NAMES:
            self.env.append((node.lineno, f"os.{node.attr}"))
        if node.attr == "params_show":  # dvc.api.params_show() reads params.yaml
            self.yaml.append((node.lineno, self.function, True))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        is_yaml = (
            isinstance(func, ast.Attribute)
            and func.attr in YAML_LOADERS
            and isinstance(func.value, ast.Name)
            and func.value.id in self.yaml_names
        ) or (isinstance(func, ast.Name) and func.id in self.yaml_functions)
        if is_yaml:
            self.yaml.append((node.lineno, self.function, any(_mentions_params(a) for a in node.args)))
        reads_file = (
            isinstance(func, ast.Attribute) and func.attr in FILE_READS and _mentions_params(func.value)
        ) or (
            isinstance(func, ast.Name) and func.id == "open" and any(_mentions_params(a) for a in node.args)
        )
        if reads_file:
            self.params_reads.append(node.lineno)
        self.generic_visit(node)


def violations(source: str, module: str) -> list[str]:
    """What ``source`` (the file ``module``, relative to the repository) does that only a settings module may."""
    readers = _Readers()
    readers.visit(ast.parse(source))
    found = []
    if module not in ENV_READERS:
        found += [
            f"{module}:{line} reads the environment ({what}): use the settings" for line, what in readers.env
        ]
    if module not in PARAMS_READERS:
        for line, function, params in readers.yaml:
            if params or (module, function) not in OTHER_YAML:
                found.append(
                    f"{module}:{line} parses YAML in {function}: params.yaml is read through app.settings; "
                    "another file belongs in OTHER_YAML with what it is"
                )
        found += [
            f"{module}:{line} reads a params file: use the settings' reader" for line in readers.params_reads
        ]
    return found


def python_files() -> list[Path]:
    return sorted(
        p for folder in WALKED for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts
    )


def test_only_the_settings_modules_read_params_yaml_and_the_environment() -> None:
    found = [
        v for path in python_files() for v in violations(path.read_text(), path.relative_to(ROOT).as_posix())
    ]
    assert found == [], "\n".join(found)


def test_the_allow_lists_name_what_exists() -> None:
    """No stale entries: each allowed module exists, and each other-YAML reader still parses YAML there."""
    for module in {*ENV_READERS, *PARAMS_READERS}:
        assert (ROOT / module).is_file(), module
    for module, function in OTHER_YAML:
        readers = _Readers()
        readers.visit(ast.parse((ROOT / module).read_text()))
        assert function in {f for _, f, _ in readers.yaml}, (module, function)


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import os\nURL = os.environ.get('SWITCHBOARD_X')\n", "app/cache/cache.py"),
        ("import os as o\nURL = o.getenv('SWITCHBOARD_X')\n", "nlu/datasets.py"),
        ("from os import environ\n", "pipelines/_common.py"),
        ("import yaml\ndef f(p):\n    return yaml.safe_load(p.read_text())\n", "app/llm/config.py"),
        ("from yaml import safe_load as sl\ndef g(p):\n    return sl(open(p))\n", "pipelines/split_nlu.py"),
        ("import yaml\ndef endpoints_config(s):\n    return yaml.safe_load(s.params_file.read_text())\n",
         "app/scaleout.py"),
        ("def f(settings):\n    return settings.params_file.read_text()\n", "app/ui/Home.py"),
        ("def f():\n    return open('params.yaml').read()\n", "app/gateway/app.py"),
        ("import dvc.api\nP = dvc.api.params_show()\n", "pipelines/train_nlu.py"),
    ],
)  # fmt: skip
def test_the_check_finds_a_new_reader(source: str, module: str) -> None:
    assert violations(source, module)


def test_the_check_lets_the_allowed_readers_and_other_yaml_files_be() -> None:
    assert violations("import os\nX = os.environ.get('A')\n", "app/offline.py") == []
    assert violations("import yaml\ndef _parse(raw):\n    return yaml.safe_load(raw)\n", "app/flags.py") == []
    assert (
        violations("def f(s):\n    return str(s.params_file)\n", "app/stack.py") == []
    )  # a path, not a read
