"""The chat page shows proactive messages (fetched from the real CRM service) once each."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from app.data.db import get_engine
from app.integrations.notifications import NotificationStore
from tests.app.ui.test_agent_page import service  # noqa: F401 - fixture

CHAT_PAGE = Path(__file__).resolve().parents[3] / "app" / "ui" / "pages" / "1_Chat.py"


def bubbles(app: AppTest) -> list[tuple[str, list[str]]]:
    return [(bubble.name, [md.value for md in bubble.markdown]) for bubble in app.chat_message]


def test_new_messages_appear_on_refresh_once(service):  # noqa: F811
    app = AppTest.from_file(CHAT_PAGE, default_timeout=20).run()
    assert not app.exception and app.chat_message.len == 0
    sender = app.session_state["sender_id"]
    store = NotificationStore(get_engine(service.db_url))
    store.notify("acme", sender, f"acme:{sender}", "k1", "Your ticket #3 is now resolved.")
    store.notify("acme", "someone-else", "acme:someone-else", "k2", "Not for you")

    app.button(key="check_notifications").click().run()
    assert bubbles(app) == [("assistant", ["Your ticket #3 is now resolved."])]
    app.button(key="check_notifications").click().run()
    assert bubbles(app) == [("assistant", ["Your ticket #3 is now resolved."])]  # not shown twice

    store.notify("acme", sender, f"acme:{sender}", "k3", "Hi, Sam from support here.")
    app.button(key="check_notifications").click().run()
    assert [b[1][0] for b in bubbles(app)] == [
        "Your ticket #3 is now resolved.",
        "Hi, Sam from support here.",
    ]
