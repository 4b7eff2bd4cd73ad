"""The socket guard refuses non-loopback connections, here and in the processes the tests start."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import socket_guard

from tests.conftest import GUARD_DIR, guarded_env


@pytest.mark.parametrize(
    ("family", "address", "allowed"),
    [
        (socket.AF_INET, ("127.0.0.1", 80), True),
        (socket.AF_INET, ("127.8.9.10", 80), True),
        (socket.AF_INET, ("localhost", 80), True),
        (socket.AF_INET6, ("::1", 80, 0, 0), True),
        (socket.AF_UNIX, "/tmp/x.sock", True),
        (socket.AF_INET, ("192.0.2.1", 443), False),
        (socket.AF_INET, ("10.0.0.1", 443), False),
        (socket.AF_INET6, ("2001:db8::1", 443, 0, 0), False),
        (socket.AF_INET, ("huggingface.co", 443), False),
    ],
)
def test_is_allowed(family, address, allowed):
    assert socket_guard.is_allowed(family, address) is allowed


def test_guard_is_installed_in_the_test_process():
    assert socket_guard.installed()


def test_guard_refuses_before_connecting():
    # The guard raises before the original connect is called, so nothing leaves the machine.
    with socket.socket() as sock, pytest.raises(socket_guard.NonLoopbackConnection):
        sock.connect(("huggingface.co", 443))


def test_guard_is_installed_in_child_processes():
    code = "import socket, socket_guard; print(socket.socket.connect is socket_guard._guarded_connect)"
    out = subprocess.run([sys.executable, "-c", code], env=guarded_env(), capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr
    assert str(GUARD_DIR) in guarded_env()["PYTHONPATH"]
