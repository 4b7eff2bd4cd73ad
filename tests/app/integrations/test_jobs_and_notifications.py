"""Background jobs and notifications: refunds announced, ticket webhooks delivered, nothing lost on restart."""

from __future__ import annotations

import sqlalchemy as sa

from app.data.db import get_engine
from app.data.schema import jobs, notifications
from app.integrations.crm import CrmClient
from app.integrations.jobs import JobStore, JobWorker
from app.integrations.notifications import NotificationClient, NotificationStore
from app.integrations.ticketing import TicketingClient
from tests.app.integrations.service import free_port, post, running_service, service_settings, wait_for


def test_refund_is_acknowledged_then_announced_once(service):
    ack = CrmClient(service.crm_url).request_refund("acme", "alice", "acme:alice", "ORD-10043")
    notes = NotificationClient(service.crm_url)
    fetched = wait_for(lambda: notes.fetch("acme", "alice"))
    assert len(fetched) == 1
    assert "refund of EUR 24.50 for order ORD-10043 has been processed" in fetched[0].text
    assert fetched[0].conversation_id == "acme:alice"
    job = JobStore(get_engine(service.db_url)).get("acme", ack.job_id)
    assert job["status"] == "done" and job["attempts"] == 1
    assert notes.fetch("acme", "alice") == []  # delivered: not pending any more
    assert notes.fetch("acme", "alice", after=fetched[0].id) == []
    assert notes.fetch("acme", "alice", after=0) == fetched  # a client that lost it asks again
    assert notes.fetch("acme", "bob") == [] and notes.fetch("globex", "alice") == []


def test_jobs_pending_at_a_crash_run_when_the_service_is_back(store_url):
    """The first service is killed before the job is due; a new one resumes it from the stored row."""
    settings = service_settings(store_url, crm_job_delay_s=3600.0)
    with running_service(settings):
        ack = CrmClient(settings.crm_url).request_refund("acme", "bob", "acme:bob", "ORD-10078")
    engine = get_engine(store_url)
    assert JobStore(engine).get("acme", ack.job_id)["status"] == "pending"
    with engine.begin() as conn:  # the hour has passed
        conn.execute(sa.update(jobs).values(run_after=sa.func.current_timestamp()))
    with running_service(service_settings(store_url)) as restarted:
        fetched = wait_for(lambda: NotificationClient(restarted.crm_url).fetch("acme", "bob"))
    assert "ORD-10078" in fetched[0].text
    assert JobStore(engine).get("acme", ack.job_id)["status"] == "done"


def test_a_job_run_twice_notifies_once(store_url):
    """At-least-once execution (a crash after the effect, before 'done') must not double the message."""
    engine = get_engine(store_url)
    job_id = JobStore(engine).enqueue("acme", "carla", "acme:carla", "refund", {"order_id": "ORD-10105"})
    worker = JobWorker(engine, webhook_url=lambda: "http://127.0.0.1:1/")
    assert worker.run_due() == 1
    with engine.begin() as conn:
        conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(status="pending"))
    assert worker.run_due() == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(notifications)).scalar() == 1


def test_ticket_status_change_is_posted_as_a_webhook_and_announced(service):
    engine = get_engine(service.db_url)
    ticket = TicketingClient(engine).open_ticket("acme", "alice", "acme:alice", "help", "user: help")
    reply = NotificationClient(service.crm_url).set_ticket_status("acme", ticket.id, "resolved")
    assert reply["status"] == "resolved"
    fetched = wait_for(lambda: NotificationClient(service.crm_url).fetch("acme", "alice"))
    assert [n.text for n in fetched] == [f"Your ticket #{ticket.id} is now resolved."]
    assert post(service, f"/tickets/acme/{ticket.id}/status", json={"status": "eaten"}).status_code == 422
    assert post(service, "/tickets/acme/9999/status", json={"status": "closed"}).status_code == 404
    assert post(service, "/webhooks/tickets", json={"event": "other"}).status_code == 422


def test_webhook_is_retried_until_the_receiver_answers(store_url):
    engine = get_engine(store_url)
    tickets = TicketingClient(engine)
    ticket = tickets.open_ticket("acme", "bob", "acme:bob", "help", "user: help")
    tickets.set_status("acme", ticket.id, "pending")
    receiver = service_settings(store_url)
    url = {"value": f"http://127.0.0.1:{free_port()}/webhooks/tickets"}  # nobody listens yet
    worker = JobWorker(engine, webhook_url=lambda: url["value"], webhook_timeout_s=1.0)
    assert worker.run_due() == 0
    with engine.connect() as conn:
        job = conn.execute(sa.select(jobs)).mappings().one()
    assert job["status"] == "pending" and job["attempts"] == 1 and "ConnectError" in job["last_error"]
    with running_service(receiver, run_worker=False):
        url["value"] = receiver.ticket_webhook
        with engine.begin() as conn:  # skip the backoff
            conn.execute(sa.update(jobs).values(run_after=sa.func.current_timestamp()))
        assert worker.run_due() == 1
    texts = [row["text"] for row in NotificationStore(engine).fetch("acme", "bob")]
    assert texts == [f"Your ticket #{ticket.id} is now pending."]


def test_agent_replies_reach_the_user_and_hand_back_ends_the_handoff(service):
    engine = get_engine(service.db_url)
    tickets = TicketingClient(engine)
    ticket = tickets.open_ticket("acme", "alice", "acme:alice", "help", "user: help", handoff=True)
    tickets.open_ticket("acme", "bob", "acme:bob", "no handoff", "user: x")
    client = NotificationClient(service.crm_url)
    queue = client.open_handoffs("acme")
    assert [(h["id"], h["transcript"]) for h in queue] == [(ticket.id, "user: help")]
    assert client.open_handoffs("globex") == []

    client.agent_reply("acme", ticket.id, "Hi Alice, I'm Sam. Let me check.", agent="sam")
    assert [n.text for n in client.fetch("acme", "alice")] == ["Hi Alice, I'm Sam. Let me check."]
    assert "agent (sam): Hi Alice" in tickets.get_ticket("acme", ticket.id)["transcript"]
    assert tickets.active_handoff("acme", "acme:alice")["id"] == ticket.id

    client.hand_back("acme", ticket.id)
    assert tickets.active_handoff("acme", "acme:alice") is None
    assert client.open_handoffs("acme") == []
    assert "back with the Northwind Goods assistant" in client.fetch("acme", "alice")[0].text
    assert post(service, f"/handoffs/acme/{ticket.id}/release").status_code == 409
    assert post(service, f"/handoffs/acme/{ticket.id}/messages", json={"text": "late"}).status_code == 409
    assert post(service, "/handoffs/acme/9999/messages", json={"text": "x"}).status_code == 404
    assert post(service, f"/handoffs/acme/{ticket.id}/messages", json={"text": ""}).status_code == 422


def test_the_hand_back_notice_names_the_tenants_assistant(service):
    from app.tenants import assistant_name

    assert assistant_name("globex") == "the Globex Energy assistant"
    assert assistant_name("initech") == "the assistant"  # no profile: never another tenant's name
