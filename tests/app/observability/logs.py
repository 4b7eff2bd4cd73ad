"""Our JSON logging, configured for one test and put back afterwards, with the lines it wrote."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from app.observability.logging import configure_logging


@contextmanager
def json_log_lines(level: str = "INFO") -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """``configure_logging()`` writing to a buffer; yields a function returning the JSON lines so far."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream, stderr = io.StringIO(), sys.stderr
    sys.stderr = stream  # the handler binds the stream it finds at configuration time
    try:
        configure_logging(level)
    finally:
        sys.stderr = stderr
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()
