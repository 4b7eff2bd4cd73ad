"""The Streamlit pages under AppTest, with the bot unreachable (a closed loopback port).

The pages read the bot's URLs from ``get_settings()``, so each test points ``SWITCHBOARD_RASA_PORT`` at a
port nothing listens on and clears the settings cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.settings import get_settings
from app.ui.chat_client import BotMessage, Button, ChatClient
from tests.conftest import free_port

UI_DIR = Path(__file__).resolve().parents[3] / "app" / "ui"
HOME_PAGE = UI_DIR / "Home.py"
CHAT_PAGE = UI_DIR / "pages" / "1_Chat.py"
TIMEOUT_S = 20  # generous: the first run imports Streamlit's and the app's modules


@pytest.fixture
def closed_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Point the settings at a loopback port nothing listens on; yields the port."""
    port = free_port()
    monkeypatch.setenv("SWITCHBOARD_HOST", "127.0.0.1")
    monkeypatch.setenv("SWITCHBOARD_RASA_PORT", str(port))
    monkeypatch.setenv("SWITCHBOARD_TENANT", "acme")
    get_settings.cache_clear()
    yield port
    get_settings.cache_clear()


def chat_page() -> AppTest:
    """The chat page after its first run."""
    app = AppTest.from_file(CHAT_PAGE, default_timeout=TIMEOUT_S).run()
    assert not app.exception
    return app


def transcript(app: AppTest) -> list[tuple[str, list[str]]]:
    """Each chat bubble as (role, its markdown texts)."""
    return [(bubble.name, [md.value for md in bubble.markdown]) for bubble in app.chat_message]


def test_first_run_shows_an_empty_conversation_with_sender_and_tenant(closed_port: int) -> None:
    app = chat_page()

    assert app.title[0].value == "Chat with the bot"
    assert app.chat_message.len == 0 and app.error.len == 0
    assert app.sidebar.text_input[0].value == "acme"
    assert app.sidebar.code[0].value == app.session_state["sender_id"]
    assert f"127.0.0.1:{closed_port}/webhooks/rest/webhook" in app.sidebar.caption[0].value


def test_unreachable_bot_shows_an_error_and_keeps_the_users_messages(closed_port: int) -> None:
    app = chat_page()

    app.chat_input[0].set_value("hello").run()

    assert not app.exception
    url = f"http://127.0.0.1:{closed_port}/webhooks/rest/webhook"
    assert app.error.len == 1
    assert f"The bot is not reachable at {url}. Start it with `make run`." in app.error[0].value
    assert transcript(app) == [("user", ["hello"])]

    app.chat_input[0].set_value("anyone there?").run()

    assert not app.exception
    assert transcript(app) == [("user", ["hello"]), ("user", ["anyone there?"])]
    assert app.error.len == 1


def test_new_conversation_resets_sender_history_and_error(closed_port: int) -> None:
    app = chat_page()
    app.chat_input[0].set_value("hello").run()
    first_sender = app.session_state["sender_id"]

    app.button(key="new_conversation").click().run()

    assert not app.exception
    assert app.session_state["sender_id"] != first_sender
    assert app.sidebar.code[0].value == app.session_state["sender_id"]
    assert app.session_state["history"] == []
    assert app.chat_message.len == 0 and app.error.len == 0


def test_changing_the_tenant_starts_a_new_conversation(closed_port: int) -> None:
    app = chat_page()
    app.chat_input[0].set_value("hello").run()
    first_sender = app.session_state["sender_id"]

    app.sidebar.text_input[0].set_value("globex").run()

    assert app.session_state["tenant"] == "globex"
    assert app.session_state["sender_id"] != first_sender
    assert app.chat_message.len == 0


def test_replies_render_and_a_button_sends_its_payload(
    closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network is replaced by a stand-in for ChatClient.send: this checks the page, not the bot."""
    sent: list[tuple[str, str, str]] = []

    def send(self: ChatClient, sender: str, text: str) -> list[BotMessage]:
        sent.append((self.tenant, sender, text))
        if text == "/affirm":
            return [BotMessage(text="Great, what is your order number?")]
        return [BotMessage(text="Is it about an order?", buttons=(Button("Yes", "/affirm"),))]

    monkeypatch.setattr(ChatClient, "send", send)
    app = chat_page()
    app.chat_input[0].set_value("hi").run()

    assert transcript(app) == [("user", ["hi"]), ("assistant", ["Is it about an order?"])]
    app.button(key="reply-1-0-button-0").click().run()

    assert not app.exception
    sender = app.session_state["sender_id"]
    assert sent == [("acme", sender, "hi"), ("acme", sender, "/affirm")]
    assert transcript(app) == [
        ("user", ["hi"]),
        ("assistant", ["Is it about an order?"]),
        ("user", ["Yes"]),
        ("assistant", ["Great, what is your order number?"]),
    ]
    assert app.button(key="reply-1-0-button-0").disabled  # only the latest reply's buttons are live


def test_home_page_says_the_bot_is_down_and_links_to_the_chat(closed_port: int) -> None:
    app = AppTest.from_file(HOME_PAGE, default_timeout=TIMEOUT_S).run()

    assert not app.exception
    assert app.title[0].value == "Switchboard"
    assert f"nothing answers at http://127.0.0.1:{closed_port}" in app.error[0].value
    assert "make run" in app.error[0].value
    assert [link.label for link in app.page_link] == [
        "Chat with the bot",
        "Analytics: containment, fallbacks, cost, latency",
        "Evaluation results of the pipeline",
    ]
