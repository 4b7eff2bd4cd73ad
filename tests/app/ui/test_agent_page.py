"""The agent page under AppTest against the real CRM service (uvicorn on loopback, temporary stores)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.data.db import get_engine, upgrade
from app.integrations.notifications import NotificationStore
from app.integrations.ticketing import TicketingClient
from app.reliability.breakers import reset_breakers
from app.settings import Settings, get_settings
from app.ui.chat_client import fetch_notifications
from tests.app.integrations.service import free_port, running_service, service_settings

AGENT_PAGE = Path(__file__).resolve().parents[3] / "app" / "ui" / "pages" / "2_Agent.py"


@pytest.fixture
def service(tmp_path, monkeypatch) -> Iterator[Settings]:
    url = f"sqlite:///{tmp_path / 'stores.db'}"
    upgrade(url)
    reset_breakers("notifications")
    with running_service(service_settings(url)) as settings:
        monkeypatch.setenv("SWITCHBOARD_CRM_PORT", str(settings.crm_port))
        monkeypatch.setenv("SWITCHBOARD_TENANT", "acme")
        get_settings.cache_clear()
        yield settings
    get_settings.cache_clear()
    reset_breakers("notifications")


def agent_page() -> AppTest:
    app = AppTest.from_file(AGENT_PAGE, default_timeout=20).run()
    assert not app.exception
    return app


def test_lists_handoffs_replies_and_hands_back(service):
    tickets = TicketingClient(get_engine(service.db_url))
    ticket = tickets.open_ticket(
        "acme", "dana", "acme:dana", "Chat handoff (request): help", "user: help", handoff=True
    )
    app = agent_page()
    assert app.code[0].value == "user: help"
    assert f"#{ticket.id}" in app.expander[0].label

    app.text_area(key=f"reply-{ticket.id}").set_value("Hello Dana, Sam here.")
    app.button(key=f"send-{ticket.id}").click().run()
    assert not app.exception and app.success[0].value == f"Reply sent to ticket #{ticket.id}."
    chat = fetch_notifications(service.crm_url, "acme", "dana")
    assert [n.text for n in chat] == ["Hello Dana, Sam here."]
    assert "Sam here" in app.code[0].value  # the transcript now has the agent's reply

    app.button(key=f"release-{ticket.id}").click().run()
    assert not app.exception
    assert tickets.active_handoff("acme", "acme:dana") is None
    assert app.info[0].value == "No conversation is waiting for an agent."
    assert "back with" in NotificationStore(get_engine(service.db_url)).fetch("acme", "dana")[0]["text"]


def test_service_down_is_reported(monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_CRM_PORT", str(free_port()))
    get_settings.cache_clear()
    reset_breakers("notifications")
    app = agent_page()
    assert "not reachable" in app.error[0].value
    get_settings.cache_clear()
