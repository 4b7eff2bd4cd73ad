"""The web channel (the Streamlit chat page) renders replies through the response model: a knowledge
answer's source becomes a link to the tenant's help centre; quick replies stay clickable buttons."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from app.settings import get_settings
from app.ui.chat_client import BotMessage, Button, ChatClient
from tests.app.ui.test_chat_page import CHAT_PAGE, TIMEOUT_S, transcript
from tests.conftest import free_port

ANSWER = "Delivery to Germany takes 2-4 business days.\n\nSource: Shipping & delivery › Delivery times"


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    """The chat page on tenant acme, its bot replaced by one knowledge answer with a button."""
    monkeypatch.setenv("SWITCHBOARD_RASA_PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("SWITCHBOARD_TENANT", "acme")
    reply = [BotMessage(text=ANSWER, buttons=(Button("Talk to a person", "/human_handoff"),))]
    monkeypatch.setattr(ChatClient, "send", lambda self, sender, text: reply)
    get_settings.cache_clear()
    yield AppTest.from_file(CHAT_PAGE, default_timeout=TIMEOUT_S).run()
    get_settings.cache_clear()


def test_a_knowledge_answer_links_its_source_and_buttons_stay_clickable(page):
    template = get_settings().section("channels", dict)["source_links"]["acme"]  # params.yaml's demo one
    page.chat_input[0].set_value("How long does delivery take?").run()
    assert not page.exception
    link = template.format(title="Shipping%20%26%20delivery")
    assert transcript(page)[1] == (
        "assistant",
        [
            f"Delivery to Germany takes 2-4 business days.\n\nSource: [Shipping & delivery › Delivery times]({link})"
        ],
    )
    assert page.button(key="reply-1-0-button-0").label == "Talk to a person"


def test_a_tenant_without_a_link_template_sees_the_source_as_text(page):
    page.sidebar.text_input[0].set_value("globex").run()
    page.chat_input[0].set_value("delivery?").run()
    assert transcript(page)[1] == ("assistant", [ANSWER])
