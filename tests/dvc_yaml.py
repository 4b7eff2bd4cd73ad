"""dvc.yaml as DVC reads it, for the tests that check it: ``${...}`` filled in from its variables (params.yaml,
DVC's default, then the file's own ``vars``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
_VARIABLE = re.compile(r"\$\{([\w.]+)\}")


def spec(root: Path = ROOT) -> dict[str, Any]:
    """The parsed ``root/dvc.yaml``."""
    return yaml.safe_load((root / "dvc.yaml").read_text())


def resolve(text: str, root: Path = ROOT) -> str:
    """``text`` with every ``${a.b}`` replaced by its value (``${paths.index}`` -> ``knowledge/index``)."""
    variables: dict[str, Any] = dict(yaml.safe_load((root / "params.yaml").read_text()))
    for entry in spec(root).get("vars", []):
        if isinstance(entry, dict):
            variables.update(entry)

    def value(match: re.Match[str]) -> str:
        current: Any = variables
        for key in match.group(1).split("."):
            current = current[key]
        return str(current)

    return _VARIABLE.sub(value, text)
