"""Switchboard's Streamlit entry point: ``streamlit run app/ui/Home.py``.

Says what the demo is, links to the pages and shows whether the bot (the Rasa server) is up.
"""

from __future__ import annotations

import streamlit as st

from app.settings import get_settings
from app.ui.chat_client import is_up


def render_intro() -> None:
    """Title, what Switchboard is, and where to go next."""
    st.title("Switchboard")
    st.markdown(
        "An enterprise support chatbot: a Rasa assistant that answers customers' questions from the "
        "knowledge base and looks up their orders. This app is a demo front end that talks to the bot "
        "over its REST channel, as any website or app would."
    )
    st.page_link("pages/1_Chat.py", label="Chat with the bot", icon="💬")
    st.page_link("pages/3_Analytics.py", label="Analytics: containment, fallbacks, cost, latency", icon="📊")
    st.page_link("pages/4_Evaluation.py", label="Evaluation results of the pipeline", icon="🧪")


def render_bot_status(rasa_url: str) -> None:
    """Whether the Rasa server answers at ``rasa_url``, and how to start it if not."""
    st.subheader("Bot status")
    if is_up(rasa_url):
        st.success(f"The bot is up at {rasa_url}.")
    else:
        st.error(f"The bot is down: nothing answers at {rasa_url}. Start it with `make run`.")
    st.button("Check again")  # any click reruns the page, which checks again


def main() -> None:
    """Render the home page."""
    st.set_page_config(page_title="Switchboard", page_icon="💬")
    settings = get_settings()
    render_intro()
    render_bot_status(settings.rasa_url)
    st.caption(f"Tenant: {settings.tenant} · Webhook: {settings.webhook_url}")


main()
