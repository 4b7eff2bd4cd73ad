"""Reliability patterns: circuit breakers per dependency and the four degradation levels."""

from app.reliability.breakers import breaker_states, get_breaker, reset_breakers
from app.reliability.degradation import (
    DegradationController,
    DegradationLevel,
    DegradationSettings,
    DependencyRule,
    LevelStatus,
)

__all__ = [
    "DegradationController",
    "DegradationLevel",
    "DegradationSettings",
    "DependencyRule",
    "LevelStatus",
    "breaker_states",
    "get_breaker",
    "reset_breakers",
]
