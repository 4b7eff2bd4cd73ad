"""Feature flags: defaults in the ``flags`` section of params.yaml, per-tenant overrides, environment overrides,
and a deterministic percentage canary.

``params.yaml``::

    flags:
      defaults:
        degradation_level: auto        # auto, or force full / reduced / static / maintenance
        challenger_percent: 0          # share of users routed to a challenger model version
      tenants:
        globex: {degradation_level: reduced}

Environment or ``.env`` (operators, values parsed as YAML): ``SWITCHBOARD_FLAG_<NAME>`` for every tenant and
``SWITCHBOARD_FLAG_<NAME>__<TENANT>`` for one, e.g. ``SWITCHBOARD_FLAG_DEGRADATION_LEVEL=maintenance``.

Precedence, first found wins: environment for the tenant, environment for all, params for the tenant,
params default, the caller's default. The overrides are looked up on every call, through the settings'
:meth:`~app.settings.Settings.environ` (the live environment over ``.env``) unless a mapping is given, so a
test that changes ``os.environ`` takes effect at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import yaml

from app.settings import get_settings

ENV_PREFIX = "SWITCHBOARD_FLAG_"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_BUCKETS = 10_000  # canary resolution: 0.01 %


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"flag names are lower_snake_case, not {name!r}")
    return name


def _env_tenant(tenant: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", tenant.upper())


class Flags:
    """Flag values from params and the environment."""

    def __init__(
        self,
        defaults: Mapping[str, Any] | None = None,
        tenants: Mapping[str, Mapping[str, Any]] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.defaults = {_check_name(k): v for k, v in (defaults or {}).items()}
        self.tenants = {
            t: {_check_name(k): v for k, v in (f or {}).items()} for t, f in (tenants or {}).items()
        }
        self._env = env

    @classmethod
    def from_params(cls, section: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> Flags:
        """From the ``flags`` section of params.yaml (``get_settings().section("flags", Flags.from_params)``)."""
        section = section or {}
        unknown = set(section) - {"defaults", "tenants"}
        if unknown:
            raise ValueError(f"the `flags` section takes `defaults` and `tenants`, not {sorted(unknown)}")
        return cls(section.get("defaults"), section.get("tenants"), env)

    @property
    def env(self) -> Mapping[str, str]:
        """Where overrides are looked up: the mapping given, else the settings' environment (with ``.env``)."""
        return get_settings().environ() if self._env is None else self._env

    def get(self, name: str, tenant: str | None = None, default: Any = None) -> Any:
        """The flag's value for ``tenant`` (see the module docstring for precedence)."""
        _check_name(name)
        env = self.env
        key = ENV_PREFIX + name.upper()
        if tenant is not None and (value := env.get(f"{key}__{_env_tenant(tenant)}")) is not None:
            return _parse(value)
        if (value := env.get(key)) is not None:
            return _parse(value)
        if tenant is not None and name in self.tenants.get(tenant, {}):
            return self.tenants[tenant][name]
        return self.defaults.get(name, default)

    def enabled(self, name: str, tenant: str | None = None) -> bool:
        """A boolean flag; anything but a true value (true, yes, on, 1) is off."""
        value = self.get(name, tenant, default=False)
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)

    def percent(self, name: str, tenant: str | None = None) -> float:
        """A percentage flag (0-100); a clear error when it is not one."""
        value = self.get(name, tenant, default=0)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"flag {name} must be a percentage, not {value!r}") from None
        if not 0 <= number <= 100:
            raise ValueError(f"flag {name} must be between 0 and 100, not {number}")
        return number


def _parse(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def canary_bucket(tenant: str, user: str, salt: str = "") -> int:
    """The user's stable bucket in [0, 10000): a hash of salt, tenant and user (no state, same everywhere)."""
    if not tenant or not user:
        raise ValueError("tenant and user are required for a canary decision")
    digest = hashlib.sha256(f"{salt}\x1f{tenant}\x1f{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS


def in_canary(tenant: str, user: str, percent: float, salt: str = "") -> bool:
    """Whether this user is in the ``percent`` % canary: deterministic per (salt, tenant, user).

    Raising the percentage only adds users (a user in the 10 % canary stays in the 20 % one). Use a different
    ``salt`` per experiment so the same users are not always the guinea pigs.
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be between 0 and 100, not {percent}")
    return canary_bucket(tenant, user, salt) < round(percent * _BUCKETS / 100)


def choose_variant(
    tenant: str, user: str, percent: float, champion: str, challenger: str, salt: str = ""
) -> str:
    """``challenger`` for the users in the canary, ``champion`` for everyone else (e.g. model versions)."""
    return challenger if in_canary(tenant, user, percent, salt) else champion


@lru_cache(maxsize=1)
def get_flags() -> Flags:
    """The process's flags, read once from params.yaml (the overrides are still looked up on every call)."""
    return get_settings().section("flags", Flags.from_params)
