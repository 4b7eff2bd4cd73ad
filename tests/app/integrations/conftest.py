"""Integration fixtures: migrated and seeded stores, and the CRM service running on them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.data.db import get_engine, upgrade
from app.data.seed import seed_crm
from app.reliability.breakers import reset_breakers
from app.settings import Settings
from tests.app.integrations.service import running_service, service_settings


@pytest.fixture
def store_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(url)
    seed_crm(get_engine(url))
    return url


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    """Breakers are process-wide: every test starts with closed ones."""
    reset_breakers("crm")
    reset_breakers("notifications")
    yield
    reset_breakers("crm")
    reset_breakers("notifications")


@pytest.fixture
def service(store_url) -> Iterator[Settings]:
    """The CRM service, with its worker, serving ``store_url`` on a free loopback port."""
    with running_service(service_settings(store_url)) as settings:
        yield settings
