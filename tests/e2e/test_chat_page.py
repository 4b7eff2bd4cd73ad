"""The Streamlit chat page (AppTest) talking to the real running bot over the REST channel."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.settings import get_settings
from tests.conftest import seed_order

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHAT_PAGE = Path(__file__).resolve().parents[2] / "app" / "ui" / "pages" / "1_Chat.py"


@pytest.fixture
def page(bot, monkeypatch) -> AppTest:
    monkeypatch.setenv("SWITCHBOARD_RASA_PORT", str(bot.settings.rasa_port))
    get_settings.cache_clear()
    app = AppTest.from_file(str(CHAT_PAGE), default_timeout=90).run()
    yield app
    get_settings.cache_clear()


def test_chat_page_holds_a_conversation_with_the_bot(page, bot):
    page.chat_input[0].set_value("hello").run()
    assert not page.exception and page.error.len == 0
    assert "Northwind Goods assistant" in page.chat_message[-1].markdown[0].value

    order = seed_order(bot, page.session_state["sender_id"])  # the page's user, with an order of their own
    page.chat_input[0].set_value(f"Where is my order {order}?").run()
    assert f"{order} has shipped" in page.chat_message[-1].markdown[0].value
    roles = [bubble.name for bubble in page.chat_message]
    assert roles == ["user", "assistant", "user", "assistant"]
