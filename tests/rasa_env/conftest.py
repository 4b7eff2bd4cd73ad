"""Rasa-environment tests: the repo importable, offline env and the socket guard installed."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "guard")]

import socket_guard  # noqa: E402

from app.offline import apply_offline_env  # noqa: E402

socket_guard.install()
apply_offline_env()
