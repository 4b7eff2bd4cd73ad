"""Refuse every outbound connection that is not to loopback (stdlib only; both environments).

The test suite installs it in its own process (tests/conftest.py) and, through ``sitecustomize.py`` in
this folder on ``PYTHONPATH``, in every server process the tests start. A stray hub download or
telemetry call then fails loudly instead of leaving the machine.
"""

from __future__ import annotations

import ipaddress
import socket

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


class NonLoopbackConnection(ConnectionRefusedError):
    """Raised instead of connecting anywhere but loopback."""


def is_allowed(family: int, address: object) -> bool:
    """True for Unix sockets and for IPv4/IPv6 loopback addresses (by literal or by ``localhost``)."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True
    host = str(address[0]) if isinstance(address, tuple) and address else str(address)
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it would need DNS, which is not loopback


def _check(sock: socket.socket, address: object) -> None:
    if not is_allowed(sock.family, address):
        raise NonLoopbackConnection(
            f"socket guard: refused a connection to {address!r} (tests are loopback-only)"
        )


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(self, address)
    return _original_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(self, address)
    return _original_connect_ex(self, address)


def install() -> None:
    """Patch ``socket.socket`` (idempotent)."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


def installed() -> bool:
    return socket.socket.connect is _guarded_connect
