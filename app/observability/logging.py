"""Structured JSON logs (structlog) with correlation ids, for every process of the main environment.

Call ``configure_logging()`` once at process start (never at import). Bind per-turn context with
``structlog.contextvars.bound_contextvars(correlation_id=..., tenant_id=..., conversation_id=...)`` and
every log line inside carries it. Standard-library loggers (Sanic, rasa_sdk, SQLAlchemy) go through the
same JSON renderer.

Every line passes :func:`mask_sensitive` last: e-mail addresses, phone, card and IBAN numbers
(:func:`app.observability.pii.mask_pii`) and bearer tokens, JWTs and API keys (``mask_secrets``) in any
string value, exception text included, are masked before the line is written. Our own identifiers
(:data:`KEPT_AS_IS`: tenant, user, conversation and correlation ids, timestamp, level) are kept: they are how
an operator follows a turn, and they are pseudonyms the retention tooling knows (docs/data-retention.md).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from app.observability.pii import mask_pii, mask_secrets

KEPT_AS_IS = frozenset(
    {"timestamp", "level", "logger", "correlation_id", "tenant_id", "user_id", "conversation_id", "api_key"}
)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(mask_pii(value))
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


def mask_sensitive(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: personal data and credentials masked in every value but :data:`KEPT_AS_IS`."""
    for key, value in event_dict.items():
        if key not in KEPT_AS_IS:
            event_dict[key] = _masked(value)
    return event_dict


_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
    structlog.processors.format_exc_info,
    mask_sensitive,
]


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Route structlog and stdlib logging to stderr as one JSON object per line (or console text)."""
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
