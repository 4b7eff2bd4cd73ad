"""Orchestration: which handler answers a turn (the router) and the one handler vocabulary."""

from app.orchestration.handlers import HANDLERS
from app.orchestration.router import ROUTED, RouteDecision, RouterConfig, Turn, decide

__all__ = ["HANDLERS", "ROUTED", "RouteDecision", "RouterConfig", "Turn", "decide"]
