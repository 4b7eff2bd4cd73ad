"""A local, deterministic OpenAI-compatible LLM server for tests (never imported by the product).

Start it with :class:`LLMTestServer` (a context manager running in a background thread) or as a process with
``python -m tests.llm_server --port 8999``; see ``app`` for the endpoints, reply, token and fault rules.
"""

from .app import (
    ConfigUpdate,
    FaultConfig,
    ScriptRule,
    ServerConfig,
    ServerState,
    ToolCallSpec,
    count_tokens,
    create_app,
)
from .server import LLMTestServer

__all__ = [
    "ConfigUpdate",
    "FaultConfig",
    "LLMTestServer",
    "ScriptRule",
    "ServerConfig",
    "ServerState",
    "ToolCallSpec",
    "count_tokens",
    "create_app",
]
