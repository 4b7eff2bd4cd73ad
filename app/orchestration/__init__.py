"""Orchestration: the router that picks a handler per turn, and the offline cost evaluation that replays it."""

from app.orchestration.router import HANDLERS, RouteDecision, RouterConfig, Turn, decide

__all__ = ["HANDLERS", "RouteDecision", "RouterConfig", "Turn", "decide"]
