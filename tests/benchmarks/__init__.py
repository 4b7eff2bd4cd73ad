"""Tests of the benchmark scripts, which are scripts (``python benchmarks/x.py``), not package modules."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def script_module(name: str) -> Iterator[ModuleType]:
    """``benchmarks/<name>.py`` loaded as the module ``name``, for a fixture to ``yield from``: registered in
    sys.modules while in use (dataclasses look their module up there), and sys.path, which the scripts
    reorder on import, restored afterwards."""
    saved_path = list(sys.path)
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
        sys.path[:] = saved_path
