"""Call Rasa (its own Python 3.10 environment) from the main environment as a subprocess.

The Rasa interpreter is the settings' ``rasa_python`` (``SWITCHBOARD_RASA_PYTHON`` or ``.venv-rasa/bin/python``
at the repository root, made by ``make setup``); Rasa processes get the environment the settings see (the
process environment over ``.env``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from app.offline import apply_offline_env
from app.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]


class RasaError(RuntimeError):
    """A Rasa command failed or the Rasa environment is missing; the message says which and why."""


def rasa_python() -> Path:
    """The Rasa environment's interpreter, or a clear error saying how to create it."""
    path = get_settings().rasa_python
    if not path.exists():
        raise RasaError(f"Rasa environment not found at {path}: run `make setup` first.")
    return path


def rasa_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Rasa processes: offline defaults, and our code importable (custom channel)."""
    env = dict(get_settings().environ())
    apply_offline_env(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    env.update(extra or {})
    return env


def rasa_command(args: Sequence[str]) -> list[str]:
    """The argv that runs ``rasa <args>`` through ``nlu.rasa_cli``."""
    return [str(rasa_python()), "-m", "nlu.rasa_cli", *args]


def run_in_rasa_env(
    module: str, args: Sequence[str], label: str, cwd: Path | None = None, quiet: bool = False
) -> str:
    """Run ``python -m <module> <args>`` in the Rasa environment to completion; return its combined output,
    raise ``RasaError`` naming ``label`` on failure.

    Output is streamed to stderr as it comes (long trainings show their progress) unless ``quiet``.
    """
    proc = subprocess.Popen(
        [str(rasa_python()), "-m", module, *args],
        cwd=cwd,
        env=rasa_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if not quiet:
            sys.stderr.write(line)
    code = proc.wait()
    output = "".join(lines)
    if code != 0:
        tail = "".join(lines[-15:]).strip()
        raise RasaError(f"`{label}` failed with exit code {code}:\n{tail}")
    return output


def run_rasa(args: Sequence[str], cwd: Path | None = None, quiet: bool = False) -> str:
    """Run a Rasa command (``rasa <args>`` through ``nlu.rasa_cli``); see :func:`run_in_rasa_env`."""
    return run_in_rasa_env("nlu.rasa_cli", args, f"rasa {' '.join(args[:2])}", cwd=cwd, quiet=quiet)
