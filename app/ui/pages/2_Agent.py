"""The human agent's side of a handoff: open handoffs with their transcripts, replies, hand-back.

Everything goes through the CRM service (``NotificationClient``): a reply becomes a notification the
user's chat page fetches, and "Hand back to the bot" ends the handoff so that the bot answers again.
"""

from __future__ import annotations

import streamlit as st

from app.integrations.http import ServiceRejected, ServiceUnavailable
from app.integrations.notifications import NotificationClient
from app.settings import get_settings

TENANT, AGENT, FLASH = "agent_tenant", "agent_name", "agent_flash"


def client() -> NotificationClient:
    settings = get_settings()
    return NotificationClient(settings.crm_url, timeout_s=settings.crm_timeout_s)


def act(action: str, ticket_id: int) -> None:
    """Button callback: send the typed reply, or hand the conversation back; the outcome is flashed."""
    tenant = st.session_state[TENANT]
    try:
        if action == "reply":
            text = (st.session_state.get(f"reply-{ticket_id}") or "").strip()
            if not text:
                st.session_state[FLASH] = ("warning", "Type a reply first.")
                return
            client().agent_reply(tenant, ticket_id, text, agent=st.session_state[AGENT] or "agent")
            st.session_state[f"reply-{ticket_id}"] = ""
            st.session_state[FLASH] = ("success", f"Reply sent to ticket #{ticket_id}.")
        else:
            client().hand_back(tenant, ticket_id)
            st.session_state[FLASH] = ("success", f"Ticket #{ticket_id} handed back to the bot.")
    except (ServiceUnavailable, ServiceRejected) as exc:
        st.session_state[FLASH] = ("error", str(exc))


def main() -> None:
    st.set_page_config(page_title="Switchboard · Agent", page_icon="🎧")
    settings = get_settings()
    st.session_state.setdefault(TENANT, settings.tenant)
    st.session_state.setdefault(AGENT, "agent")
    with st.sidebar:
        st.text_input("Tenant", key=TENANT)
        st.text_input("Your name", key=AGENT)
        st.button("Refresh", key="refresh")
        st.caption(f"CRM service: {settings.crm_url}")
    st.title("Open handoffs")
    if flash := st.session_state.pop(FLASH, None):
        getattr(st, flash[0])(flash[1])
    if not settings.crm_port:
        st.error(
            "The CRM service is not configured (SWITCHBOARD_CRM_PORT): start everything with `make run`."
        )
        return
    try:
        handoffs = client().open_handoffs(st.session_state[TENANT])
    except (ServiceUnavailable, ServiceRejected) as exc:
        st.error(f"The CRM service is not reachable: {exc}")
        return
    if not handoffs:
        st.info("No conversation is waiting for an agent.")
    for ticket in handoffs:
        with st.expander(f"#{ticket['id']} · {ticket['user_id']} · {ticket['subject']}", expanded=True):
            st.caption(f"Conversation {ticket['conversation_id']} · opened {ticket['created_at']}")
            st.code(ticket["transcript"] or "(empty)", language=None)
            st.text_area("Reply", key=f"reply-{ticket['id']}")
            left, right = st.columns(2)
            left.button("Send reply", key=f"send-{ticket['id']}", on_click=act, args=("reply", ticket["id"]))
            right.button(
                "Hand back to the bot",
                key=f"release-{ticket['id']}",
                on_click=act,
                args=("release", ticket["id"]),
            )


main()
