"""End to end: two users talk to the real bot over REST, ``python -m app.data forget-user`` erases one.

What the erased user left in Rasa's tracker store and in our stores is gone; the other user's is exactly as
it was; and the running Rasa server, which reads trackers from its SQL store on every message, holds no copy
of the erased conversation: the user's next message starts a fresh one. The tracker is read from the store
Rasa itself reads (``bot.settings.tracker_db``), as the other e2e tests do: the launcher (app/stack.py) runs
Rasa without ``--enable-api``, so ``GET /conversations/<id>/tracker`` is not served.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from app.data.__main__ import main
from app.data.db import get_engine
from app.data.retention import FORGOTTEN, forget_user, user_hash
from app.data.schema import answer_cache, jobs, llm_calls, notifications, retention_audit, tickets
from tests.e2e.test_conversation import say, texts, tracker_events

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TABLES = (tickets, jobs, notifications, answer_cache, llm_calls)
# Questions the tier policy sends to the small LLM (measured: close retrieval candidates), so each leaves an
# llm_calls row and an answer-cache entry. None is asked by another test: cached answers must not leak into
# tests/e2e/test_brain.py, which counts LLM requests (and the teardown forgets both users anyway).
QUESTIONS = {
    "gone": "Does the warranty cover a blender that broke after 20 months, and who pays return shipping?",
    "kept": "Can I combine a student discount code with free express delivery on a pre-order?",
}


def stored(bot, tenant: str, user: str) -> dict[str, list[dict]]:
    """The user's rows in each of our stores."""
    engine = get_engine(bot.settings.db_url)
    with engine.connect() as conn:
        return {
            t.name: [
                dict(r)
                for r in conn.execute(
                    sa.select(t).where(t.c.tenant_id == tenant, t.c.user_id == user).order_by(t.c.id)
                ).mappings()
            ]
            for t in TABLES
        }


@pytest.fixture
def scripted_llm(llm):
    llm.reset()
    llm.add_rule(model="small", pattern="(?i)blender", quote=1)  # grounded, cited answers
    llm.add_rule(model="small", pattern="(?i)student", quote=1)
    yield llm
    llm.reset()


@pytest.fixture
def two_users(bot):
    """Two new users of tenant acme (the tenant with knowledge documents); both forgotten afterwards, so no
    cache entry of theirs outlives the test."""
    users = tuple(f"user-{uuid.uuid4().hex[:8]}" for _ in range(2))
    yield users
    engine = get_engine(bot.settings.db_url)
    tracker = get_engine(f"sqlite:///{bot.settings.tracker_db}")
    for user in users:
        forget_user("acme", user, stores=engine, tracker=tracker)


def test_forget_user_erases_one_user_and_keeps_the_other(bot, scripted_llm, two_users, capsys):
    tenant = "acme"
    gone, kept = two_users
    for role, user in (("gone", gone), ("kept", kept)):
        assert "Northwind" in texts(say(bot, user, "hello", tenant))
        say(bot, user, QUESTIONS[role], tenant)
        assert "ticket #" in texts(say(bot, user, "I want to talk to a human agent", tenant))
    assert [e["text"] for e in tracker_events(bot, f"{tenant}:{gone}") if e["event"] == "user"][:1] == [
        "hello"
    ]
    before = stored(bot, tenant, gone)
    assert (len(before["tickets"]), len(before["answer_cache"])) == (1, 1) and before["llm_calls"]
    kept_events, kept_rows = tracker_events(bot, f"{tenant}:{kept}"), stored(bot, tenant, kept)
    assert kept_rows["answer_cache"] and kept_rows["llm_calls"]

    code = main(
        [
            "forget-user",
            "--tenant",
            tenant,
            "--user",
            gone,
            "--url",
            bot.settings.db_url,
            "--tracker-url",
            bot.settings.tracker_db,
            "--params",
            str(bot.settings.params_file),
        ]
    )
    out, err = capsys.readouterr()

    assert (code, err) == (0, ""), out
    assert tracker_events(bot, f"{tenant}:{gone}") == []
    assert stored(bot, tenant, gone) == {t.name: [] for t in TABLES}
    ids = [c["id"] for c in before["llm_calls"]]
    with get_engine(bot.settings.db_url).connect() as conn:  # the tenant's cost stays, without the user
        anonymised = (
            conn.execute(sa.select(llm_calls).where(llm_calls.c.id.in_(ids)).order_by(llm_calls.c.id))
            .mappings()
            .all()
        )
    assert [(c["user_id"], c["conversation_id"], c["cost"], c["prompt_tokens"]) for c in anonymised] == [
        (FORGOTTEN, "", c["cost"], c["prompt_tokens"]) for c in before["llm_calls"]
    ]
    assert tracker_events(bot, f"{tenant}:{kept}") == kept_events
    assert stored(bot, tenant, kept) == kept_rows
    with get_engine(bot.settings.db_url).connect() as conn:
        audit = (
            conn.execute(sa.select(retention_audit).where(retention_audit.c.user_id == user_hash(gone)))
            .mappings()
            .one()
        )
    assert audit["tenant_id"] == tenant and audit["counts"]["tickets"] == 1
    assert audit["counts"]["llm_calls_anonymised"] == len(before["llm_calls"])
    assert audit["counts"]["tracker_events"] >= 9  # three turns, each several events

    # the server kept no copy: the next message is the first of a new conversation (no handoff active),
    # stored exactly as a brand-new user's first message is
    fresh = f"user-{uuid.uuid4().hex[:8]}"
    for user in (gone, fresh):
        assert "Northwind" in texts(say(bot, user, "hello", tenant))
    events = tracker_events(bot, f"{tenant}:{gone}")
    assert [e["text"] for e in events if e["event"] == "user"] == ["hello"]
    assert [(e["event"], e.get("name")) for e in events] == [
        (e["event"], e.get("name")) for e in tracker_events(bot, f"{tenant}:{fresh}")
    ]
    assert any(e.get("name") == "action_session_start" for e in events)
