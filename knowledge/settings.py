"""The knowledge layer's view of :class:`app.settings.Settings` (the one settings reader).

Everything the knowledge modules configure from ``SWITCHBOARD_*`` variables (or ``.env``) is a field of
``Settings``, read through :func:`app.settings.get_settings`. Functions that take an explicit ``environ``
mapping (tests, tools) get settings built from that mapping alone: no process environment, no ``.env``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.settings import Settings, get_settings


class _MappingSettings(Settings):
    """``Settings`` validated from the values given, ignoring the process environment and ``.env``."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[Any], init_settings: Any, *_: Any, **__: Any
    ) -> tuple:
        return (init_settings,)


def knowledge_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The process settings, or (with ``environ``) the settings its ``SWITCHBOARD_*`` entries give."""
    if environ is None:
        return get_settings()
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    values = {
        key[len(prefix) :].lower(): value for key, value in environ.items() if key.upper().startswith(prefix)
    }
    return _MappingSettings(**values)
