"""Structured logs, health and metrics."""
