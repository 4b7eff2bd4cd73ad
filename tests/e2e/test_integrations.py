"""End to end over REST: the CRM service, asynchronous refunds, ticket webhooks, handoff and hand-back.

Proactive messages are read the way the chat page reads them: ``NotificationClient.fetch`` against the
CRM service the stack started.
"""

from __future__ import annotations

import time
import uuid

import pytest

from app.data.db import get_engine
from app.integrations.jobs import JobStore
from app.integrations.notifications import Notification, NotificationClient
from app.integrations.ticketing import TicketingClient
from tests.conftest import seed_order
from tests.e2e.test_conversation import say, texts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def notes(bot) -> NotificationClient:
    return NotificationClient(bot.settings.crm_url)


def wait_for_notification(bot, user: str, contains: str, timeout: float = 30.0) -> list[Notification]:
    """Fetch as the chat page does (cursor = last id seen) until a message containing ``contains`` comes."""
    seen: list[Notification] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += notes(bot).fetch("acme", user, after=seen[-1].id if seen else None)
        if any(contains in n.text for n in seen):
            return seen
        time.sleep(0.3)
    raise AssertionError(f"no notification with {contains!r} for {user} in {timeout} s; got {seen}")


def test_order_lookup_goes_through_the_crm_service(bot, user):
    assert bot.service("crm").process.poll() is None
    order = seed_order(bot, user, status="out_for_delivery", carrier="PostNL")
    reply = texts(say(bot, user, f"Where is my order {order}?"))
    assert f"{order} is out for delivery" in reply and "PostNL" in reply


def test_refund_is_acknowledged_then_announced(bot):
    assert "Which order" in texts(say(bot, "alice", "I want a refund"))
    reply = texts(say(bot, "alice", "ORD-10043"))
    assert "Refund requested for order ORD-10043" in reply and "let you know" in reply
    (job,) = JobStore(get_engine(bot.settings.db_url)).for_user("acme", "alice", "refund")
    assert job["conversation_id"] == "acme:alice" and f"R-{job['id']}" in reply
    announced = wait_for_notification(bot, "alice", "refund of EUR 24.50 for order ORD-10043")
    assert announced[-1].conversation_id == "acme:alice"
    assert notes(bot).fetch("acme", "alice") == []  # delivered once; nothing pending


def test_refund_survives_a_crm_restart_mid_job(bot):
    reply = texts(say(bot, "bob", "I'd like a refund for order ORD-10077"))
    assert "Refund requested for order ORD-10077" in reply
    bot.kill("crm")  # the job is stored but not done (it waits crm_job_delay_s)
    try:
        jobs = JobStore(get_engine(bot.settings.db_url))
        (job,) = jobs.for_user("acme", "bob", "refund")
        assert job["status"] == "pending"
        assert "can't reach our order system" in texts(say(bot, "bob", "Where is my order ORD-10077?"))
    finally:
        bot.restart("crm")  # the other tests need the service back, whatever happened above
    wait_for_notification(bot, "bob", "order ORD-10077 has been processed")
    assert jobs.get("acme", job["id"])["status"] == "done"
    assert "being prepared" in texts(say(bot, "bob", "Where is my order ORD-10077?"))


def test_ticket_status_change_is_announced(bot, user):
    reply = texts(say(bot, user, "I want to talk to a human agent"))
    (ticket,) = TicketingClient(get_engine(bot.settings.db_url)).list_tickets("acme", user)
    assert f"ticket #{ticket['id']}" in reply
    notes(bot).set_ticket_status("acme", ticket["id"], "resolved")
    wait_for_notification(bot, user, f"Your ticket #{ticket['id']} is now resolved.")


def test_handoff_silences_the_bot_until_the_agent_hands_back(bot, user):
    assert "Northwind Goods assistant" in texts(say(bot, user, "hello"))
    reply = texts(say(bot, user, "I want to talk to a person"))
    assert "ticket #" in reply and "stay quiet" in reply

    order = seed_order(bot, user)
    assert say(bot, user, "hello? is anyone there?") == []  # during the handoff: no bot reply
    assert say(bot, user, f"Where is my order {order}?") == []

    queue = [h for h in notes(bot).open_handoffs("acme") if h["user_id"] == user]
    assert len(queue) == 1
    ticket = queue[0]
    assert "user: hello? is anyone there?" in ticket["transcript"]
    assert f"user: Where is my order {order}?" in ticket["transcript"]

    notes(bot).agent_reply("acme", ticket["id"], "Hi, I'm Sam from support. How can I help?", agent="sam")
    wait_for_notification(bot, user, "I'm Sam from support")

    notes(bot).hand_back("acme", ticket["id"])
    wait_for_notification(bot, user, "back with the Northwind Goods assistant")
    reply = texts(say(bot, user, f"Where is my order {order}?"))  # the bot answers again
    assert f"{order} has shipped" in reply
    assert "Northwind Goods assistant" in texts(say(bot, user, "hello"))
