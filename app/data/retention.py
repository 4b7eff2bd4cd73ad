"""Data retention and per-user erasure ("right to erasure") across every store the bot writes.

Stores, and what each operation does there (docs/data-retention.md has the operator's view):

- Rasa's SQL tracker store (a database of its own, ``Settings.tracker_db``): table ``events``, one row per
  tracker event, keyed by ``sender_id`` = ``<tenant>:<user>`` (our REST channel, app/channels/rest.py).
  :func:`forget_user` deletes every event of the user's conversation; :func:`purge` deletes whole
  conversations whose *latest* event is older than the limit. Never single old events: Rasa appends a turn's
  events after counting those stored since the last ``session_started`` (``SQLTrackerStore._additional_events``),
  so removing part of a live session would make it skip or duplicate events.
- Our stores (``Settings.db_url``, app/data/schema.py): ``tickets`` (with their transcripts), ``jobs``,
  ``notifications``, ``answer_cache`` are deleted; ``llm_calls`` are *anonymised* (user and conversation ids
  replaced, error text cleared) rather than deleted, because tokens and cost are the tenant's spend: deleting
  them would make the tenant's cost totals (app/llm/usage.py) and cost evaluations wrong after every erasure.
  The CRM tables (``crm_customers``, ``crm_orders``) stand in for the company's own CRM, which is not ours to
  erase: they are left alone.
- The answer cache on Redis, when ``cache.backend`` is ``redis``: keys hold tenant and knowledge-base
  version but no user id (entries are shared per tenant). Each hash stores the ``user_id`` whose question
  created it; forgetting a user deletes the entries whose stored ``user_id`` matches (the question text is
  theirs), checked and deleted atomically by a Lua script. Entries other users caused stay, even if the
  forgotten user was later answered from them: they hold nothing of theirs.

Both operations support a dry run (same predicates, counted instead of applied: nothing changes, no audit
row) and return a :class:`Report` of rows per store. Each database is changed in one transaction (stores and
tracker store are separate databases, so two; one when both URLs are the same database). Redis goes first:
it has no transaction with SQL, and losing cache entries to a later SQL failure loses nothing (they are
regenerated); the SQL side is then all or nothing, and re-running finishes a failed run (idempotent).

Every real run writes one ``retention_audit`` row (migration 0004): tenant, the user as ``sha256:<hex>`` of
the user id (``*`` for purges), the counts and the time. The id is hashed, not kept in clear, so the audit
trail does not re-store the identifier that was erased, yet answers "was this user erased, when, what was
removed?" by hashing the id in question (:func:`user_hash`). It is pseudonymous, not anonymous: a guessable id
can be confirmed by hashing guesses, which only tells someone with database access what they already suspect.

Not covered (say so when asked): the JSON logs (``.switchboard/logs``, rotate them), MLflow runs (no user
data), the knowledge index (no user data), the CRM stand-in (above).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.data.schema import answer_cache, jobs, llm_calls, notifications, retention_audit, tickets

# Rasa 3.6's ``SQLTrackerStore.SQLEvent`` (rasa/core/tracker_store.py), column for column, in a metadata of
# its own: the table belongs to Rasa's database, so it must never reach our migrations or autogenerate.
TRACKER_METADATA = sa.MetaData()
tracker_events = sa.Table(
    "events",
    TRACKER_METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.Float),  # seconds since the epoch, as Rasa's events carry it
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)

# The REST channel's id rules (app/channels/rest.py, which runs in the Rasa environment and cannot be
# imported here). Tenants must match exactly; user ids are checked loosely (any stored id can be forgotten).
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_USER_ID = 128

# Replaces the user id in anonymised ``llm_calls`` rows. A REST sender id must start with a letter or
# digit, so this marker can never be a real user's id.
FORGOTTEN = "_forgotten"
# Purge rows in the audit trail: a purge is about every tenant and user.
ALL = "*"
# Pending jobs of these kinds are kept by forget_user unless asked: deleting a queued refund would cancel
# money owed to the user (and the worker may be running it right now). Other pending jobs (ticket webhooks
# about tickets being erased) are deleted.
KEEP_PENDING_KINDS = ("refund",)

STORE_TABLES = ("tickets", "jobs", "notifications", "answer_cache", "llm_calls", "retention_audit")


class RetentionError(Exception):
    """A store cannot be used as asked (unreachable, missing table, bad input); the message says which."""


class BadInput(RetentionError):
    """The caller's input is invalid (tenant or user id format, retention policy)."""


class RetentionPolicy(BaseModel):
    """The ``retention`` section of params.yaml: how long each store keeps data, in days.

    The defaults are the documented ones (params.yaml, docs/data-retention.md); ``0`` for a limit means
    "keep forever" for that store.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    conversation_days: int = Field(90, ge=0, description="conversations with no event for this long")
    ticket_days: int = Field(365, ge=0, description="resolved/closed tickets opened this long ago")
    notification_days: int = Field(30, ge=0, description="delivered notifications, since delivery")
    undelivered_notification_days: int = Field(180, ge=0, description="notifications never fetched")
    job_days: int = Field(30, ge=0, description="finished (done) jobs, since they finished")
    llm_call_anonymise_days: int = Field(30, ge=0, description="llm_calls lose user/conversation ids")
    llm_call_days: int = Field(395, ge=0, description="llm_calls deleted (13 months: a year of cost reports)")
    expired_cache: bool = Field(True, description="delete answer-cache entries past their expiry")

    @classmethod
    def from_params(cls, section: dict[str, Any] | None) -> RetentionPolicy:
        """From the ``retention`` section (missing keys take the defaults); :class:`BadInput` if invalid."""
        try:
            return cls.model_validate(section or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "retention"
            raise BadInput(f"invalid retention policy: retention.{where}: {first['msg']}") from exc


@dataclass
class Report:
    """What a forget or purge run did (or would do, in a dry run): rows per store, in a stable order."""

    action: str  # forget_user | purge
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _utc(now: datetime | None) -> datetime:
    """``now`` as an aware UTC time (naive means UTC): SQLite keeps times without their zone."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def user_hash(user_id: str) -> str:
    """How the audit trail records a forgotten user: ``sha256:<hex>`` of the id (see the module docstring)."""
    return "sha256:" + hashlib.sha256(user_id.encode()).hexdigest()


def validate_ids(tenant_id: str, user_id: str) -> None:
    """Raise :class:`BadInput` unless the tenant id has the REST channel's format and the user id is usable."""
    if not isinstance(tenant_id, str) or not TENANT_PATTERN.match(tenant_id):
        raise BadInput(
            f"invalid tenant id {str(tenant_id)[:70]!r}: 1-64 of a-z, 0-9, '_' or '-', starting alphanumeric"
        )
    if (
        not isinstance(user_id, str)
        or not user_id.strip()
        or len(user_id) > MAX_USER_ID
        or not user_id.isprintable()
        or user_id == FORGOTTEN
    ):
        raise BadInput(f"invalid user id {str(user_id)[:70]!r}: 1-{MAX_USER_ID} printable characters")


def require_tables(engine: sa.Engine, names: tuple[str, ...], what: str, hint: str) -> None:
    """Fail with one clear message when the database lacks a table we are about to change."""
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
    except sa.exc.SQLAlchemyError as exc:
        raise RetentionError(f"cannot reach the {what} at {engine.url!r}: {describe_error(exc)}") from exc
    missing = [name for name in names if name not in present]
    if missing:
        raise RetentionError(f"the {what} at {engine.url!r} has no table {', '.join(missing)} ({hint})")


def describe_error(exc: BaseException) -> str:
    """``Type: first line of the message`` (a driver's own error when SQLAlchemy wraps one)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


# --- SQL helpers: one predicate per store, applied or counted --------------------------------------------


def _delete(conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool], dry_run: bool) -> int:
    if dry_run:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())
    return int(conn.execute(sa.delete(table).where(where)).rowcount)


def _update(
    conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool], values: dict[str, Any], dry_run: bool
) -> int:
    if dry_run:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())
    return int(conn.execute(sa.update(table).where(where).values(**values)).rowcount)


ANONYMISED = {"user_id": FORGOTTEN, "conversation_id": "", "error": None}


@contextmanager
def _transactions(stores: sa.Engine, tracker: sa.Engine | None) -> Iterator[tuple[sa.Connection, Any]]:
    """One transaction per database; the tracker's commits first, then ours (with the audit row).

    If the tracker store commit fails, ours rolls back; if ours fails after it, a re-run finishes the job.
    When both are the same database (same URL), one connection serves both: two write transactions on one
    SQLite file would lock each other out.
    """
    with stores.connect() as ours:
        ours.begin()
        try:
            if tracker is None:
                yield ours, None
            elif str(tracker.url) == str(stores.url):
                yield ours, ours
            else:
                with tracker.connect() as theirs:
                    theirs.begin()
                    yield ours, theirs
                    theirs.commit()
            ours.commit()
        except BaseException:
            ours.rollback()
            raise


# --- Redis answer cache ------------------------------------------------------------------------------------

# KEYS[1] entry hash, KEYS[2] the scope's index; ARGV[1] user id, ARGV[2] entry key. Atomic, so an entry
# another user re-created between a check and a delete is never removed by mistake.
_FORGET_ENTRY_LUA = """
if redis.call('HGET', KEYS[1], 'user_id') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def forget_redis_cache(backend: Any, tenant_id: str, user_id: str, dry_run: bool = False) -> int:
    """Delete (or count) the tenant's Redis cache entries whose stored ``user_id`` is ``user_id``.

    ``backend`` is an :class:`app.cache.backends.RedisCacheBackend`; its key layout is
    ``{prefix}:{tenant}:{kb_version}:e:{key}`` (hash) and ``{prefix}:{tenant}:{kb_version}:idx`` (sorted set),
    tenant and version URL-quoted, so ``:e:`` splits a name into scope and key unambiguously.
    """
    client = backend.redis
    pattern = f"{_glob_escape(backend.prefix)}:{quote(tenant_id, safe='')}:*:e:*"
    forget = client.register_script(_FORGET_ENTRY_LUA)
    found = 0
    for raw in client.scan_iter(match=pattern, count=500):
        name = raw.decode() if isinstance(raw, bytes) else raw
        scope, _, key = name.rpartition(":e:")
        if dry_run:
            stored = client.hget(name, "user_id")
            found += int(stored is not None and stored.decode() == user_id)
        else:
            found += int(forget(keys=[name, f"{scope}:idx"], args=[user_id, key]))
    return found


def purge_redis_cache(backend: Any, now: datetime, dry_run: bool = False) -> int:
    """Remove expired members from every scope index (the entry hashes expire by themselves in Redis)."""
    client = backend.redis
    cutoff = now.timestamp()
    removed = 0
    for raw in client.scan_iter(match=f"{_glob_escape(backend.prefix)}:*:idx", count=500):
        if dry_run:
            removed += int(client.zcount(raw, "-inf", cutoff))
        else:
            removed += int(client.zremrangebyscore(raw, "-inf", cutoff))
    return removed


# --- the two operations ------------------------------------------------------------------------------------


def forget_user(
    tenant_id: str,
    user_id: str,
    *,
    stores: sa.Engine,
    tracker: sa.Engine | None,
    redis_cache: Any = None,
    default_tenant: str | None = None,
    include_pending_jobs: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Report:
    """Delete everything the bot stored about one user of one tenant; other users and tenants are untouched.

    - tracker store: every event of ``<tenant>:<user>``; for the ``default_tenant`` also of the bare
      ``<user>`` (a conversation from a channel without tenancy, which the actions attribute to the default
      tenant: app/actions/context.py);
    - ``tickets`` (transcripts included), ``notifications``, ``answer_cache`` entries their questions created,
      ``jobs`` (pending refunds kept unless ``include_pending_jobs``: see ``KEEP_PENDING_KINDS``);
    - ``llm_calls``: anonymised (see the module docstring);
    - Redis cache entries they created, when ``redis_cache`` (a ``RedisCacheBackend``) is given.

    ``tracker=None`` leaves the tracker store out (its count is then absent from the report). Raises
    :class:`BadInput` for malformed ids and :class:`RetentionError` when a store is unusable; nothing is
    changed then.
    """
    validate_ids(tenant_id, user_id)
    now = _utc(now)
    require_tables(stores, STORE_TABLES, "stores database", "run `python -m app.data migrate`")
    if tracker is not None:
        require_tables(tracker, ("events",), "Rasa tracker store", "is this Rasa's SQL tracker store?")
    report = Report("forget_user", dry_run)
    if redis_cache is not None:
        report.counts["redis_cache"] = forget_redis_cache(redis_cache, tenant_id, user_id, dry_run)

    senders = [f"{tenant_id}:{user_id}"] + ([user_id] if tenant_id == default_tenant else [])
    keep_pending = (
        sa.and_(jobs.c.status != "done", jobs.c.kind.in_(KEEP_PENDING_KINDS))
        if not include_pending_jobs
        else sa.false()
    )

    def mine(table: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(table.c.tenant_id == tenant_id, table.c.user_id == user_id)

    with _transactions(stores, tracker) as (ours, theirs):
        if theirs is not None:
            report.counts["tracker_events"] = _delete(
                theirs, tracker_events, tracker_events.c.sender_id.in_(senders), dry_run
            )
        report.counts["tickets"] = _delete(ours, tickets, mine(tickets), dry_run)
        report.counts["jobs"] = _delete(ours, jobs, sa.and_(mine(jobs), sa.not_(keep_pending)), dry_run)
        report.counts["notifications"] = _delete(ours, notifications, mine(notifications), dry_run)
        report.counts["answer_cache"] = _delete(ours, answer_cache, mine(answer_cache), dry_run)
        report.counts["llm_calls_anonymised"] = _update(ours, llm_calls, mine(llm_calls), ANONYMISED, dry_run)
        kept = int(
            ours.execute(
                sa.select(sa.func.count()).select_from(jobs).where(mine(jobs), keep_pending)
            ).scalar_one()
        )
        if kept:
            report.notes.append(
                f"{kept} pending refund job(s) kept (money owed to the user); run forget-user again once "
                "they are done, or pass --include-pending-jobs to cancel them"
            )
        if not dry_run:
            _audit(ours, tenant_id, user_hash(user_id), report, now)
    return report


def purge(
    policy: RetentionPolicy,
    *,
    stores: sa.Engine,
    tracker: sa.Engine | None,
    redis_cache: Any = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> Report:
    """Delete (or anonymise) what is older than the policy allows, in every store, for every tenant.

    Ages count from: the conversation's latest event (tracker store), the ticket's creation (only resolved or
    closed tickets without an active handoff: the ticket table records no closing time), delivery (or
    creation, for notifications never fetched), a job's finish (``done`` jobs only), an llm_call's creation,
    a cache entry's expiry. ``now`` is fixed by tests; the default is the current UTC time.
    """
    now = _utc(now)
    require_tables(stores, STORE_TABLES, "stores database", "run `python -m app.data migrate`")
    if tracker is not None:
        require_tables(tracker, ("events",), "Rasa tracker store", "is this Rasa's SQL tracker store?")
    report = Report("purge", dry_run)

    def before(days: int) -> datetime:
        return now - timedelta(days=days)

    if redis_cache is not None and policy.expired_cache:
        report.counts["redis_cache_index"] = purge_redis_cache(redis_cache, now, dry_run)

    with _transactions(stores, tracker) as (ours, theirs):
        if theirs is not None and policy.conversation_days:
            stale = (
                sa.select(tracker_events.c.sender_id)
                .group_by(tracker_events.c.sender_id)
                .having(
                    sa.func.max(tracker_events.c.timestamp) < before(policy.conversation_days).timestamp()
                )
            )
            report.counts["tracker_events"] = _delete(
                theirs, tracker_events, tracker_events.c.sender_id.in_(stale.scalar_subquery()), dry_run
            )
        if policy.ticket_days:
            report.counts["tickets"] = _delete(
                ours,
                tickets,
                sa.and_(
                    tickets.c.status.in_(("resolved", "closed")),
                    tickets.c.handoff_active.is_(sa.false()),
                    tickets.c.created_at < before(policy.ticket_days),
                ),
                dry_run,
            )
        if policy.job_days:
            report.counts["jobs"] = _delete(
                ours,
                jobs,
                sa.and_(jobs.c.status == "done", jobs.c.finished_at < before(policy.job_days)),
                dry_run,
            )
        count = 0
        if policy.notification_days:
            count += _delete(
                ours,
                notifications,
                sa.and_(
                    notifications.c.delivered_at.is_not(None),
                    notifications.c.delivered_at < before(policy.notification_days),
                ),
                dry_run,
            )
        if policy.undelivered_notification_days:
            count += _delete(
                ours,
                notifications,
                sa.and_(
                    notifications.c.delivered_at.is_(None),
                    notifications.c.created_at < before(policy.undelivered_notification_days),
                ),
                dry_run,
            )
        if policy.notification_days or policy.undelivered_notification_days:
            report.counts["notifications"] = count
        if policy.expired_cache:
            report.counts["answer_cache"] = _delete(
                ours, answer_cache, answer_cache.c.expires_at <= now, dry_run
            )
        if policy.llm_call_days:
            report.counts["llm_calls_deleted"] = _delete(
                ours, llm_calls, llm_calls.c.created_at < before(policy.llm_call_days), dry_run
            )
        if policy.llm_call_anonymise_days:
            old = llm_calls.c.created_at < before(policy.llm_call_anonymise_days)
            if policy.llm_call_days:  # rows the delete above removes are not anonymised too (dry-run counts)
                old = sa.and_(old, llm_calls.c.created_at >= before(policy.llm_call_days))
            report.counts["llm_calls_anonymised"] = _update(
                ours, llm_calls, sa.and_(old, llm_calls.c.user_id != FORGOTTEN), ANONYMISED, dry_run
            )
        if not dry_run:
            _audit(ours, ALL, ALL, report, now)
    return report


def _audit(conn: sa.Connection, tenant_id: str, user: str, report: Report, now: datetime) -> None:
    """The audit row, in the same transaction as the changes it records."""
    conn.execute(
        sa.insert(retention_audit).values(
            tenant_id=tenant_id,
            user_id=user,
            action=report.action,
            counts=dict(report.counts),
            created_at=now,
        )
    )
