"""Settings of the code the Rasa server loads (``app/channels``): the Rasa environment's one reader.

The Rasa environment (Python 3.10, pydantic 1) cannot import ``app/settings.py``, so this module, standard
library only, reads the few variables the channel needs. The launcher (``app/stack.py``) sets them from the
main settings (environment, ``.env`` and params.yaml); a Rasa server started by hand sees its shell's
environment only.

The defaults below are written once, here; the main environment imports them too (``app/settings.py``, the
gateway), so both environments agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T", int, float)

DEFAULT_TENANT = "acme"  # used when params.yaml has no `base.tenant` and SWITCHBOARD_TENANT is unset
DEFAULT_MAX_MESSAGE_CHARS = 2000  # used when params.yaml has no `serve.max_message_chars`
# Longest wait for one custom action call (app/channels/degraded.py): below the gateway's 30 s upstream
# timeout, so a hung action server ends in the bot's static reply, not in the gateway's 504.
DEFAULT_ACTION_TIMEOUT_S = 20.0
# request bodies larger than this are refused (413): by the gateway (params.yaml `gateway.max_body_bytes`) and
# by the vendor channels (the launcher passes the gateway's value in their credentials)
DEFAULT_MAX_BODY_BYTES = 65536


def _get(name: str, environ: Mapping[str, str] | None) -> str:
    return ((os.environ if environ is None else environ).get(name) or "").strip()


def max_message_chars(environ: Mapping[str, str] | None = None) -> int:
    """``SWITCHBOARD_MAX_MESSAGE_CHARS`` (the launcher sets it from params.yaml ``serve.max_message_chars``),
    else the default; a clear ``ValueError`` when it is not a positive integer."""
    return _positive("SWITCHBOARD_MAX_MESSAGE_CHARS", environ, DEFAULT_MAX_MESSAGE_CHARS, int)


def default_tenant(environ: Mapping[str, str] | None = None) -> str:
    """The tenant of requests without ``X-Tenant-Id``: ``SWITCHBOARD_TENANT`` (the launcher sets it from the
    main settings), else the default."""
    return _get("SWITCHBOARD_TENANT", environ) or DEFAULT_TENANT


def channel_secret(environ: Mapping[str, str] | None = None) -> str:
    """``SWITCHBOARD_CHANNEL_SECRET`` (the launcher passes it on): the secret every turn must carry in
    ``X-Channel-Secret``; empty when none is configured (Rasa on loopback, the gateway on that host)."""
    return _get("SWITCHBOARD_CHANNEL_SECRET", environ)


def action_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """``SWITCHBOARD_ACTION_TIMEOUT_S``: the longest wait for one custom action call before the bot answers
    without it; else the default. A clear ``ValueError`` when it is not a positive number."""
    return _positive("SWITCHBOARD_ACTION_TIMEOUT_S", environ, DEFAULT_ACTION_TIMEOUT_S, float)


def _positive(name: str, environ: Mapping[str, str] | None, default: T, kind: Callable[[str], T]) -> T:
    """The variable ``name`` read as ``kind`` (int or float), else ``default``; ``ValueError`` naming it when
    it is not a positive number of that kind."""
    raw = _get(name, environ)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value > 0:  # type: ignore[operator]
        what = "integer" if kind is int else "number"
        raise ValueError(f"{name} must be a positive {what}, not {raw!r}")
    return value
