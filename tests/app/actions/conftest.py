"""Action test fixtures: tracker JSON fixtures, a dispatcher, the domain, and stores in a tmp folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from app.actions import services
from app.data.db import get_engine, upgrade
from app.data.seed import seed_crm
from app.settings import get_settings

DATA = Path(__file__).resolve().parents[2] / "data" / "trackers"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    return CollectingDispatcher()


@pytest.fixture(scope="session")
def domain() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "nlu" / "domain.yml").read_text())


@pytest.fixture
def tracker_from():
    """Load ``tests/data/trackers/<name>.json`` and override the latest message's fields."""

    def load(name: str, **latest: Any) -> Tracker:
        state = json.loads((DATA / f"{name}.json").read_text())
        message = copy.deepcopy(state["latest_message"])
        message.update(latest)
        return Tracker(
            state["sender_id"],
            state["slots"],
            message,
            state["events"],
            state["paused"],
            state["followup_action"],
            state["active_loop"],
            state["latest_action_name"],
        )

    return load


@pytest.fixture(autouse=True)
def stores(tmp_path, monkeypatch) -> str:
    """Fresh, migrated and seeded stores; settings and cached clients rebuilt around them."""
    url = f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(url)
    seed_crm(get_engine(url))
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", url)
    monkeypatch.setenv("SWITCHBOARD_INDEX_DIR", str(tmp_path / "no-index"))
    for cached in (get_settings, services.crm, services.ticketing, services.tools):
        cached.cache_clear()
    monkeypatch.setattr(services, "_kb", None)
    yield url
    for cached in (get_settings, services.crm, services.ticketing, services.tools):
        cached.cache_clear()


@pytest.fixture
def anyio_backend() -> str:
    """Async action tests run on asyncio (anyio's pytest plugin, marker ``anyio``)."""
    return "asyncio"
