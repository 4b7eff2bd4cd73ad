"""Tenant isolation, store by store and endpoint by endpoint: tenant A's identity never reads tenant B's data.

Two tenants whose ids collide everywhere they can: the same user id (``alice``), the same order id
(``ORD-10042``), the same client-chosen correlation id, the same cached question. Every read path the bot,
the CRM service, the agent page and the analytics use is asked as ``acme`` and must answer with acme's rows
only (and as ``globex``, globex's). Real stores: SQLite and PostgreSQL, Redis for the cache; the CRM service
runs for real (uvicorn on loopback). The gateway's side (a token's or an API key's tenant wins over any
header) is tested in tests/app/gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import redis
import sqlalchemy as sa

from app.analytics.kpis import day_bounds
from app.analytics.loaders import load_analytics, load_llm_calls, load_turns
from app.analytics.turn_records import TurnRecorder, load_records
from app.cache import AnswerCache, CacheSettings, HashingEmbedder, RedisCacheBackend, SqlCacheBackend
from app.data.db import get_engine, upgrade
from app.data.schema import action_runs, jobs, notifications, orders, tickets
from app.data.seed import seed_demo_tenants
from app.data.tracker import events as tracker_events
from app.integrations.crm import CrmClient
from app.integrations.jobs import JobStore
from app.integrations.notifications import NotificationClient, NotificationStore
from app.integrations.ticketing import TicketingClient, TicketNotFound
from app.llm.client import CallContext, CallRecord
from app.llm.usage import UsageRecorder
from app.reliability.breakers import reset_breakers
from app.settings import Settings
from app.tools import ToolContext
from app.tools.builtin import build_registry
from tests.app.analytics.tracker import Conversation
from tests.app.analytics.tracker import rows as event_rows
from tests.app.integrations.service import get, post, running_service, service_settings

TENANTS = ("acme", "globex")
USER = "alice"  # the same user id in both tenants
ORDER = "ORD-10042"  # acme's demo order of alice; globex gets one with the same id
CORRELATION = "req-0001"  # a request id both tenants' clients happened to choose
DAY = date(2026, 12, 1)
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()


def conversation(tenant: str, user: str = USER) -> str:
    return f"{tenant}:{user}"


@dataclass
class World:
    """Both tenants' rows in one database (stores and the tracker's ``events`` table)."""

    url: str
    engine: sa.Engine
    ticket: dict[str, int]
    job: dict[str, int]


def _add_tracker_events(engine: sa.Engine) -> None:
    tracker_events.metadata.create_all(engine)
    convs = []
    for tenant in TENANTS:
        conv = Conversation(conversation(tenant), T0).session_start()
        conv.user(f"where is {ORDER}", "order_question", metadata={"correlation_id": CORRELATION})
        convs.append(conv.action("action_track_order").bot(f"{tenant} answer").listen())
    for sender in ("a_me:mallory", "legacy-sender"):  # '_' is a LIKE wildcard; no tenant: the default's
        conv = Conversation(sender, T0).session_start().user("hello", "greet")
        convs.append(conv.action("utter_greet").bot("hi").listen())
    with engine.begin() as conn:
        conn.execute(sa.insert(tracker_events), event_rows(*convs))


@pytest.fixture
def world(db_url: str) -> World:
    upgrade(db_url)
    engine = get_engine(db_url)
    seed_demo_tenants(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:  # globex's alice, with an order whose id collides with acme's
        conn.execute(
            sa.insert(orders).values(
                tenant_id="globex", order_id=ORDER, user_id=USER, status="cancelled", carrier=None,
                tracking_number=None, estimated_delivery=None, total_eur=Decimal("1.00"), created_at=now,
            )
        )  # fmt: skip
    ticketing, notes, job_store = TicketingClient(engine), NotificationStore(engine), JobStore(engine)
    usage = UsageRecorder(engine)
    ticket, job = {}, {}
    for tenant in TENANTS:
        conv = conversation(tenant)
        ticket[tenant] = ticketing.open_ticket(
            tenant, USER, conv, f"{tenant} subject", f"user: {tenant} private transcript", handoff=True
        ).id
        notes.notify(tenant, USER, conv, "same-source-key", f"{tenant} private note")
        job[tenant] = job_store.enqueue(tenant, USER, conv, "refund", {"order_id": ORDER}, delay_s=3600)
        usage.record(
            CallRecord(CallContext(tenant, USER, conv, CORRELATION), 1, f"{tenant}-model", "ok", 100, 10,
                       Decimal("0.01") if tenant == "acme" else Decimal("0.50"))
        )  # fmt: skip
        with engine.begin() as conn:
            conn.execute(
                sa.insert(action_runs).values(
                    tenant_id=tenant, user_id=USER, conversation_id=conv, correlation_id=CORRELATION,
                    action="action_track_order", handler="skill", rule=f"{tenant}_rule", attempts=[],
                    sources=[], tools=[f"{tenant}_tool"], outcome="ok", stages={},
                    created_at=datetime.fromtimestamp(T0 + 1, UTC),
                )
            )  # fmt: skip
    _add_tracker_events(engine)
    return World(db_url, engine, ticket, job)


@pytest.fixture
def service(world: World) -> Iterator[Settings]:
    """The CRM service on the world's stores (no worker: the jobs stay as they are)."""
    reset_breakers("crm")
    reset_breakers("notifications")
    with running_service(service_settings(world.url), run_worker=False) as settings:
        yield settings
    reset_breakers("crm")
    reset_breakers("notifications")


def rows(engine: sa.Engine, table: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


# --- orders: the order_status tool and the CRM service --------------------------------------------------


def test_order_status_answers_each_tenants_alice_with_her_own_tenants_order(world, service):
    registry = build_registry(
        lambda: CrmClient(service.crm_url, breaker_name=None),
        lambda: TicketingClient(world.engine),
        crm_timeout_s=3,
    )
    acme = registry.call("order_status", {"order_id": ORDER}, ToolContext("acme", USER)).data
    globex = registry.call("order_status", {"order_id": ORDER}, ToolContext("globex", USER)).data
    assert (acme["found"], acme["status"], acme["total_eur"]) == (True, "shipped", "89.90")
    assert (globex["found"], globex["status"], globex["total_eur"]) == (True, "cancelled", "1.00")
    # globex's own orders do not exist for acme's users, and acme's not for globex's
    assert registry.call("order_status", {"order_id": "ORD-30011"}, ToolContext("acme", "gus")).data == {
        "found": False,
        "order_id": "ORD-30011",
    }
    assert not registry.call("order_status", {"order_id": "ORD-10077"}, ToolContext("globex", "bob")).data[
        "found"
    ]


def test_the_crm_service_reads_orders_and_refunds_within_the_path_tenant_only(world, service):
    assert get(service, "/orders/acme/ORD-30011").status_code == 404
    assert get(service, "/orders/globex/ORD-10077", params={"user": "bob"}).status_code == 404
    assert get(service, f"/orders/globex/{ORDER}").json()["status"] == "cancelled"
    refund = {"tenant_id": "acme", "user_id": "gus", "order_id": "ORD-30011"}  # globex's order, acme's path
    assert post(service, "/refunds", json=refund).status_code == 404
    assert [j["id"] for j in rows(world.engine, jobs)] == [world.job["acme"], world.job["globex"]]


# --- jobs ------------------------------------------------------------------------------------------------


def test_a_tenant_never_reads_another_tenants_job(world, service):
    assert get(service, f"/jobs/acme/{world.job['globex']}").status_code == 404
    assert get(service, f"/jobs/globex/{world.job['acme']}").status_code == 404
    assert get(service, f"/jobs/acme/{world.job['acme']}").json()["tenant_id"] == "acme"
    store = JobStore(world.engine)
    assert store.get("acme", world.job["globex"]) is None
    assert [j["tenant_id"] for j in store.for_user("acme", USER, "refund")] == ["acme"]


# --- tickets and handoffs --------------------------------------------------------------------------------


def test_tickets_are_read_and_changed_within_their_tenant_only(world, service):
    ticketing = TicketingClient(world.engine)
    assert [t["id"] for t in ticketing.list_tickets("acme", USER)] == [world.ticket["acme"]]
    with pytest.raises(TicketNotFound):
        ticketing.get_ticket("acme", world.ticket["globex"])
    assert ticketing.active_handoff("acme", conversation("globex")) is None
    registry = build_registry(lambda: None, lambda: ticketing, crm_timeout_s=3)
    mine = registry.call("my_tickets", {}, ToolContext("acme", USER)).data["tickets"]
    assert [t["subject"] for t in mine] == ["acme subject"]

    before = rows(world.engine, tickets)
    assert (
        post(
            service, f"/tickets/acme/{world.ticket['globex']}/status", json={"status": "resolved"}
        ).status_code
        == 404
    )
    with pytest.raises(TicketNotFound):
        ticketing.append_transcript("acme", world.ticket["globex"], "mallory: hello")
    with pytest.raises(TicketNotFound):
        ticketing.end_handoff("acme", world.ticket["globex"])
    assert rows(world.engine, tickets) == before
    assert len(rows(world.engine, jobs)) == 2  # no ticket webhook queued


def test_the_agent_queue_and_agent_actions_stay_within_the_tenant(world, service):
    agent = NotificationClient(service.crm_url)
    assert [h["id"] for h in agent.open_handoffs("acme")] == [world.ticket["acme"]]
    assert "globex private transcript" not in json.dumps(agent.open_handoffs("acme"))
    before_tickets, before_notes = rows(world.engine, tickets), rows(world.engine, notifications)
    other = world.ticket["globex"]
    reply = post(service, f"/handoffs/acme/{other}/messages", json={"text": "hi from acme's agent"})
    assert reply.status_code == 404
    assert post(service, f"/handoffs/acme/{other}/release").status_code == 404
    assert rows(world.engine, tickets) == before_tickets
    assert rows(world.engine, notifications) == before_notes


# --- notifications ---------------------------------------------------------------------------------------


def test_notifications_go_to_their_tenants_user_only(world, service):
    acme = get(service, f"/notifications/acme/{USER}").json()["notifications"]
    assert [n["text"] for n in acme] == ["acme private note"]
    # fetching acme's marked nothing of globex's as delivered: globex's alice still gets hers
    globex = NotificationStore(world.engine).fetch("globex", USER)
    assert [n["text"] for n in globex] == ["globex private note"]
    assert NotificationStore(world.engine).fetch("acme", USER) == []


# --- the answer cache: SQL (SQLite, PostgreSQL) and Redis -------------------------------------------------


@pytest.fixture(params=["sql", "redis"])
def cache(request, world: World) -> Iterator[AnswerCache]:
    settings = CacheSettings(ttl_s=3600)
    if request.param == "sql":
        yield AnswerCache(SqlCacheBackend(world.engine), HashingEmbedder(), settings)
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    backend = RedisCacheBackend(client, request.getfixturevalue("redis_prefix"))
    yield AnswerCache(backend, HashingEmbedder(), settings)
    client.close()


def test_cached_answers_are_never_served_across_tenants(cache):
    question = "How long does delivery to Germany take?"
    cache.store("globex", USER, "kb-1", question, "Globex: five days.", personal=False)
    assert cache.lookup("acme", "kb-1", question) is None
    assert cache.lookup("acme", "kb-1", "how long does the delivery to germany take please") is None
    cache.store("acme", USER, "kb-1", question, "Acme: two days.", personal=False)
    assert cache.lookup("acme", "kb-1", question).answer == "Acme: two days."
    assert cache.lookup("globex", "kb-1", question).answer == "Globex: five days."
    # a tenant's purge (a new knowledge-base version) leaves the other's entries alone
    cache.purge("acme", keep_kb_version="kb-2")
    assert cache.lookup("acme", "kb-1", question) is None
    assert cache.lookup("globex", "kb-1", question).answer == "Globex: five days."


# --- analytics: loaders, turn records, LLM usage ---------------------------------------------------------


def test_analytics_loaders_read_one_tenants_rows(world):
    TurnRecorder(world.url, world.url, default_tenant="acme").sync()  # the page reads the turn records
    low, high = day_bounds(DAY, DAY)
    acme = load_turns(world.url, "acme", low, high)
    assert {r["conversation_id"] for r in acme} == {
        "acme:alice",
        "legacy-sender",
    }  # the default's bare senders
    assert {r["conversation_id"] for r in load_turns(world.url, "globex", low, high)} == {"globex:alice"}
    # wildcards in a tenant id match nothing of another tenant
    assert {r["conversation_id"] for r in load_turns(world.url, "a_me", low, high)} == {"a_me:mallory"}
    assert load_turns(world.url, "acm%", low, high) == []
    calls = load_llm_calls(world.url, [i for r in acme for i in r["llm_call_ids"]])
    assert {c["model"] for c in calls} <= {"acme-model"}


def test_the_analytics_page_shows_one_tenants_conversations(world):
    TurnRecorder(world.url, world.url, default_tenant="acme").sync()
    analytics = load_analytics(world.url, "globex", DAY, DAY)
    assert set(analytics.turns["conversation_id"]) == {"globex:alice"}


def test_turn_records_join_only_their_own_conversations_runs_and_calls(world):
    recorder = TurnRecorder(world.url, world.url, default_tenant="acme")
    recorder.sync()
    acme_calls = [c["id"] for c in UsageRecorder(world.engine).calls("acme")]
    (acme,) = load_records(world.url, tenant="acme", conversation_ids=["acme:alice"])
    assert (acme["tenant_id"], acme["rule"], acme["tools"]) == ("acme", "acme_rule", ["acme_tool"])
    assert acme["llm_call_ids"] == acme_calls  # the same correlation id in globex joins nothing here
    assert {r["tenant_id"] for r in load_records(world.url, tenant="globex")} == {"globex"}
    assert {r["conversation_id"] for r in load_records(world.url, conversation_ids=["globex:alice"])} == {
        "globex:alice"
    }


def test_llm_usage_is_read_and_summed_per_tenant(world):
    usage = UsageRecorder(world.engine)
    assert [(c["tenant_id"], c["model"]) for c in usage.calls("acme")] == [("acme", "acme-model")]
    assert usage.calls("acme", conversation_id="globex:alice") == []
    assert (usage.totals("acme").calls, usage.totals("acme").cost) == (1, Decimal("0.01"))
    assert usage.totals("globex").cost == Decimal("0.5")
