"""Tools: integrations registered once, called by the Rasa actions and offered to the LLM tiers."""

from app.tools.registry import (
    Tool,
    ToolContext,
    ToolError,
    ToolRegistry,
    ToolRejected,
    ToolResult,
    ToolTimeout,
    ToolUnavailable,
)

__all__ = [
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolRejected",
    "ToolResult",
    "ToolTimeout",
    "ToolUnavailable",
]
