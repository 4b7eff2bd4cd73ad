"""The clients actions use, built once per process on first use (never at import)."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from app.data.db import get_engine
from app.integrations.crm import CrmClient
from app.integrations.ticketing import TicketingClient
from app.settings import get_settings
from app.tools.builtin import build_registry
from app.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from knowledge.retrieval import KnowledgeBase


class KnowledgeUnavailable(RuntimeError):
    """The knowledge index is missing or unreadable (run `dvc repro build_index`)."""


@lru_cache(maxsize=1)
def crm() -> CrmClient:
    """The CRM service over HTTP (started by the launcher before the action server). No breaker of its own:
    the tool registry puts the ``crm`` breaker around every call."""
    settings = get_settings()
    return CrmClient(settings.crm_url, timeout_s=settings.crm_timeout_s, breaker_name=None)


@lru_cache(maxsize=1)
def ticketing() -> TicketingClient:
    return TicketingClient(get_engine(get_settings().db_url))


@lru_cache(maxsize=1)
def tools() -> ToolRegistry:
    """The tool registry the actions and the LLM tiers share (clients resolved at call time)."""
    return build_registry(crm, ticketing, crm_timeout_s=get_settings().crm_timeout_s)


_kb_lock = threading.Lock()
_kb: KnowledgeBase | None = None


def knowledge() -> KnowledgeBase:
    """The knowledge base, loaded (with the embedding model) on first use; thread-safe."""
    global _kb
    with _kb_lock:
        if _kb is None:
            index_dir = get_settings().index_dir
            if not (index_dir / "manifest.json").exists():
                raise KnowledgeUnavailable(f"no knowledge index at {index_dir}")
            try:
                from knowledge.retrieval import KnowledgeBase

                _kb = KnowledgeBase.load(index_dir)
            except Exception as exc:  # an unreadable index must not take the bot down
                raise KnowledgeUnavailable(f"cannot load the knowledge index at {index_dir}: {exc}") from exc
        return _kb
