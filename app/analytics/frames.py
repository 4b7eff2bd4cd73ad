"""The metrics' inputs as DataFrames: the columns each one needs, and how rows become a frame.

- ``events``: rows of Rasa's SQL tracker store table ``events`` (``id, sender_id, type_name, timestamp,
  intent_name, action_name, data``; ``timestamp`` is a float epoch, ``data`` the event as JSON text). The
  ``sender_id`` is ``<tenant>:<user>`` (``app/identity.py``); one without a colon belongs to the
  default tenant, as in ``app/actions/context.py``.
- ``tickets``: our ``tickets`` table (``conversation_id`` is the sender id, ``created_at`` a UTC datetime).
- ``llm_calls``: our ``llm_calls`` table (one row per call to an LLM tier, same ``conversation_id``).

:mod:`app.analytics.loaders` returns these; the tests build them by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pandas as pd

EVENT_COLUMNS = ("id", "sender_id", "type_name", "timestamp", "intent_name", "action_name", "data")
TICKET_COLUMNS = ("conversation_id", "created_at", "status", "handoff_active")
LLM_CALL_COLUMNS = (
    "conversation_id", "tier", "model", "prompt_tokens", "completion_tokens", "cost", "latency_ms", "outcome",
    "created_at",
)  # fmt: skip


def as_frame(rows: pd.DataFrame | Iterable[dict[str, Any]] | None, columns: Iterable[str]) -> pd.DataFrame:
    """A copy of ``rows`` (a frame or a list of dicts) with at least ``columns`` (empty for None)."""
    columns = list(columns)
    if rows is None:
        return empty_frame(columns)
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    for column in columns:
        if column not in frame.columns:
            frame[column] = None
    return frame


def empty_frame(columns: Iterable[str]) -> pd.DataFrame:
    """A frame with ``columns`` and no rows."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def event_data(text: Any) -> dict[str, Any]:
    """An event's ``data`` (JSON text) as a dict; ``{}`` when it is missing or not a JSON object."""
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def epoch_seconds(values: pd.Series) -> pd.Series:
    """Datetimes (aware, or naive meaning UTC as SQLite returns them) -> float seconds since the epoch."""
    stamps = pd.to_datetime(values, utc=True, format="mixed")
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
