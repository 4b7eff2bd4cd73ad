"""Thin DVC stage entry points: one module per stage in dvc.yaml; the logic lives in the packages."""

from app.offline import apply_offline_env

apply_offline_env()
