"""Installs the socket guard in every Python process started with this folder on PYTHONPATH."""

import socket_guard

socket_guard.install()
