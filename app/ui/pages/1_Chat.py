"""Chat with the bot over its REST channel.

The conversation lives in ``st.session_state``: a sender id (a UUID, new for every conversation), the
tenant, the history of turns and the last error. Each user message (typed, or a button's payload) is sent
with ``ChatClient``; if the bot cannot be reached the page says so and keeps the user's message.

Proactive messages (a refund done, a ticket update, a human agent's reply) are fetched from the CRM
service's notification endpoint on every rerun (each message sent, or "Check for new messages") and added to
the history; the cursor (the last id shown) is in the session, so none is shown twice or lost.
"""

from __future__ import annotations

import uuid
from typing import Any

import streamlit as st

from app.channels.rendering import parse_reply, web_markdown
from app.scaleout import channel_params
from app.settings import get_settings
from app.ui.chat_client import (
    BotMessage,
    BotUnavailable,
    ChatClient,
    ChatError,
    client_for,
    fetch_notifications,
)

# Session state keys. A history entry is {"role": "user", "text": str} or
# {"role": "assistant", "messages": list[BotMessage]} (one entry per bot reply, however many messages).
SENDER, TENANT, HISTORY, ERROR, PENDING = "sender_id", "tenant", "history", "error", "pending"
TENANT_INPUT = "tenant_input"
NOTE_CURSOR, NOTE_ERROR = "notification_cursor", "notification_error"


def init_state(default_tenant: str) -> None:
    """Create the session's conversation on its first run."""
    st.session_state.setdefault(TENANT, default_tenant)
    if SENDER not in st.session_state:
        new_conversation()


def new_conversation() -> None:
    """Forget the conversation: a new sender id (so the bot starts afresh), no history, no error."""
    st.session_state[SENDER] = str(uuid.uuid4())
    st.session_state[HISTORY] = []
    st.session_state[ERROR] = None
    st.session_state.pop(PENDING, None)
    st.session_state[NOTE_CURSOR] = None
    st.session_state[NOTE_ERROR] = None


def change_tenant() -> None:
    """Switch to the tenant typed in the sidebar (empty: the default); it has its own conversations."""
    st.session_state[TENANT] = st.session_state[TENANT_INPUT].strip() or get_settings().tenant
    new_conversation()


def queue_message(text: str, shown: str) -> None:
    """Remember a message to send on this run: ``text`` goes to the bot, ``shown`` goes in the history."""
    st.session_state[PENDING] = (text, shown)


def render_sidebar(webhook_url: str) -> None:
    """Tenant selector, the conversation's sender id and the "New conversation" button."""
    with st.sidebar:
        st.header("Conversation")
        st.text_input(
            "Tenant",
            value=st.session_state[TENANT],
            key=TENANT_INPUT,
            on_change=change_tenant,
            help="Sent as the X-Tenant-Id header. Changing it starts a new conversation.",
        )
        st.markdown("Sender id")
        st.code(st.session_state[SENDER], language=None)
        st.button("New conversation", key="new_conversation", on_click=new_conversation)
        st.caption(f"Webhook: {webhook_url}")
        st.button(
            "Check for new messages",
            key="check_notifications",
            help="Messages from a human agent, refund and ticket updates arrive here.",
        )
        if st.session_state.get(NOTE_ERROR):
            st.caption(f"Notifications unavailable: {st.session_state[NOTE_ERROR]}")


def unreachable_message(exc: BotUnavailable) -> str:
    """What to tell the user when the bot cannot be reached."""
    return f"The bot is not reachable at {exc.url}. Start it with `make run`.\n\n({exc.reason})"


def exchange(client: ChatClient, text: str, shown: str) -> None:
    """Add the user's message to the history, send it, and add the bot's reply or record the error."""
    st.session_state[HISTORY].append({"role": "user", "text": shown})
    try:
        with st.spinner("Waiting for the bot…"):
            replies = client.send(st.session_state[SENDER], text)
    except BotUnavailable as exc:
        st.session_state[ERROR] = unreachable_message(exc)
        return
    except ChatError as exc:
        st.session_state[ERROR] = str(exc)
        return
    st.session_state[ERROR] = None
    st.session_state[HISTORY].append({"role": "assistant", "messages": replies})


def receive_notifications(service_url: str | None) -> None:
    """Add the messages that arrived for this user since the last run to the history (as the bot's)."""
    if not service_url:
        return
    try:
        arrived = fetch_notifications(
            service_url,
            st.session_state[TENANT],
            st.session_state[SENDER],
            after=st.session_state.get(NOTE_CURSOR),
        )
    except ChatError as exc:
        st.session_state[NOTE_ERROR] = str(exc)
        return
    st.session_state[NOTE_ERROR] = None
    for note in arrived:
        st.session_state[HISTORY].append({"role": "assistant", "messages": [BotMessage(text=note.text)]})
        st.session_state[NOTE_CURSOR] = note.id


def source_links() -> str | None:
    """The tenant's link template for cited articles (params.yaml ``channels.source_links``), if any."""
    try:
        return channel_params(get_settings()).source_links.get(st.session_state[TENANT])
    except (OSError, ValueError):  # an unreadable section: sources stay plain labels
        return None


def render_bot_message(message: BotMessage, key: str, interactive: bool) -> None:
    """One bot message: text (its sources as links, app.channels.rendering), image, custom payload and buttons
    (clickable only on the latest reply)."""
    if message.text:
        st.markdown(web_markdown(parse_reply({"text": message.text}, source_links())))
    if message.image:
        st.image(message.image)
    if message.custom:
        st.json(message.custom)
    for number, button in enumerate(message.buttons):
        st.button(
            button.title,
            key=f"{key}-button-{number}",
            on_click=queue_message,
            args=(button.payload, button.title),
            disabled=not interactive,
        )


def render_entry(entry: dict[str, Any], index: int, latest: bool) -> None:
    """One history entry as a chat bubble."""
    with st.chat_message(entry["role"]):
        if entry["role"] == "user":
            st.markdown(entry["text"])
            return
        if not entry["messages"]:
            st.caption("The bot did not reply.")
        for number, message in enumerate(entry["messages"]):
            render_bot_message(message, key=f"reply-{index}-{number}", interactive=latest)


def render_history() -> None:
    """The conversation so far, then the last error if the last message got no answer."""
    history = st.session_state[HISTORY]
    for index, entry in enumerate(history):
        render_entry(entry, index, latest=index == len(history) - 1)
    if st.session_state[ERROR]:
        st.error(st.session_state[ERROR])


def main() -> None:
    """Render the chat page, sending the message typed or clicked since the last run."""
    st.set_page_config(page_title="Switchboard · Chat", page_icon="💬")
    settings = get_settings()
    init_state(settings.tenant)
    st.title("Chat with the bot")
    configured = settings.crm_port or settings.crm_base_url  # neither: no service configured
    notification_url = settings.crm_url if configured else None

    if prompt := st.chat_input("Ask about an order, a delivery, a return…"):
        queue_message(prompt, prompt)
    receive_notifications(notification_url)
    if pending := st.session_state.pop(PENDING, None):
        exchange(client_for(settings, st.session_state[TENANT]), *pending)
    render_sidebar(settings.chat_webhook_url)
    render_history()


main()
