"""Data retention and per-user erasure ("right to erasure") across every store the bot writes.

Stores, and what each operation does there (docs/data-retention.md has the operator's view):

- Rasa's SQL tracker store (a database of its own, ``Settings.tracker_db``): table ``events``, one row per
  tracker event, keyed by ``sender_id`` = ``<tenant>:<user>`` (our REST channel, app/channels/rest.py).
  :func:`forget_user` deletes every event of the user's conversation; :func:`purge` deletes whole
  conversations whose *latest* event is older than the limit. Never single old events: Rasa appends a turn's
  events after counting those stored since the last ``session_started`` (``SQLTrackerStore._additional_events``),
  so removing part of a live session would make it skip or duplicate events.
- Our stores (``Settings.db_url``, app/data/schema.py): ``tickets`` (with their transcripts), ``jobs``,
  ``notifications``, ``answer_cache`` and the per-turn ``action_runs`` and ``turn_records`` are deleted
  (purge ages the last two with ``conversation_days``); ``llm_calls`` are *anonymised* (user and conversation ids
  replaced, error text cleared) rather than deleted, because tokens and cost are the tenant's spend: deleting
  them would make the tenant's cost totals (app/llm/usage.py) and cost evaluations wrong after every erasure.
  The CRM tables (``crm_customers``, ``crm_orders``) stand in for the company's own CRM, which is not ours to
  erase: they are left alone.
- The answer cache on Redis, when ``cache.backend`` is ``redis``: keys hold tenant and knowledge-base
  version but no user id (entries are shared per tenant). Each hash stores the ``user_id`` whose question
  created it; forgetting a user deletes the entries whose stored ``user_id`` matches (the question text is
  theirs), checked and deleted atomically by a Lua script (``RedisCacheBackend.forget_user``,
  app/cache/backends.py). Entries other users caused stay, even if the forgotten user was later answered
  from them: they hold nothing of theirs.

Who does what: this module checks the input and the stores, opens the transactions, deletes from the
tracker store (its table: app/data/tracker.py) and writes the audit row. Each store of ours forgets and
purges its own rows through its own module, in the transaction it is handed: ``tickets``
(app/integrations/ticketing.py), ``jobs`` (app/integrations/jobs.py), ``notifications``
(app/integrations/notifications.py), ``answer_cache`` (app/cache/backends.py), ``llm_calls``
(app/llm/usage.py), ``action_runs`` (app/actions/records.py) and ``turn_records``
(app/analytics/turn_records.py). Each of those modules registers its :class:`UserDataStore` when imported, so the data
layer imports none of them (``python -m app.data``, app/data/__main__.py, imports them all); a run refuses
to start while a table of :data:`USER_DATA_TABLES` has no registered store. The Redis cache is handed in
(``redis_cache``: the CLI builds it from params.yaml ``cache``).

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.data.schema import retention_audit
from app.data.tracker import events as tracker_events
from app.data.tracker import user_senders
from app.identity import TENANT_PATTERN

# User ids are checked loosely (any stored id can be forgotten); tenants must have the REST channel's format.
MAX_USER_ID = 128

# Replaces the user id in anonymised ``llm_calls`` rows. A REST sender id must start with a letter or
# digit, so this marker can never be a real user's id.
FORGOTTEN = "_forgotten"
# Purge rows in the audit trail: a purge is about every tenant and user.
ALL = "*"

# The tables of our stores that hold user data, in the order the report lists them; each has one
# registered UserDataStore (see the module docstring).
USER_DATA_TABLES = (
    "tickets", "jobs", "notifications", "answer_cache", "llm_calls", "action_runs", "turn_records",
)  # fmt: skip
STORE_TABLES = (*USER_DATA_TABLES, "retention_audit")


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

    conversation_days: int = Field(
        90,
        ge=0,
        description="conversations with no event for this long; action runs and turn records this old",
    )
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


@dataclass(frozen=True)
class ForgetRequest:
    """Whose data a forget-user run erases (ids already validated), and its options."""

    tenant_id: str
    user_id: str
    include_pending_jobs: bool = False

    def rows_of(self, table: sa.Table) -> sa.ColumnElement[bool]:
        """The user's rows of one of our tables (every one has ``tenant_id`` and ``user_id``)."""
        return sa.and_(table.c.tenant_id == self.tenant_id, table.c.user_id == self.user_id)


@dataclass(frozen=True)
class PurgeRequest:
    """What a purge run removes: the policy's limits, counted back from ``now`` (aware UTC)."""

    policy: RetentionPolicy
    now: datetime

    def before(self, days: int) -> datetime:
        return self.now - timedelta(days=days)


class UserDataStore(Protocol):
    """One of our stores that holds user data, as retention drives it (see the module docstring).

    Both methods run inside the stores database's transaction (``conn``; never commit it), record their
    counts (keys named after what they did, e.g. ``llm_calls_anonymised``) and any note in ``report``, and
    in a dry run (``report.dry_run``) count the rows their predicates select instead of changing them
    (:func:`count_or_delete`, :func:`count_or_update`). Running either twice changes nothing more.
    """

    table: str  # one of USER_DATA_TABLES

    def forget_user(self, conn: sa.Connection, request: ForgetRequest, report: Report) -> None: ...

    def purge(self, conn: sa.Connection, request: PurgeRequest, report: Report) -> None: ...


class ExternalCache(Protocol):
    """A cache outside SQL (the Redis answer cache, ``app.cache.backends.RedisCacheBackend``): it has no
    transaction with our databases, so it is changed first. Both return the entries removed (or counted)."""

    def forget_user(self, tenant_id: str, user_id: str, dry_run: bool = False) -> int: ...

    def purge_expired(self, now: float, dry_run: bool = False) -> int: ...


_STORES: dict[str, UserDataStore] = {}


def register(store: UserDataStore) -> UserDataStore:
    """Make ``store`` the one that forgets and purges its table (called by its module at import)."""
    if store.table not in USER_DATA_TABLES:
        raise ValueError(f"{store.table!r} is not a user-data table of ours ({', '.join(USER_DATA_TABLES)})")
    _STORES[store.table] = store
    return store


def registered_stores() -> list[UserDataStore]:
    """The store of every user-data table, in report order; :class:`RetentionError` if one is missing."""
    missing = [table for table in USER_DATA_TABLES if table not in _STORES]
    if missing:
        raise RetentionError(
            f"no retention handler registered for {', '.join(missing)}: import the modules that own these "
            "tables first (app/data/__main__.py imports them all)"
        )
    return [_STORES[table] for table in USER_DATA_TABLES]


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


# --- one predicate per store, applied or counted (the stores' modules use these too) ----------------------


def count_or_delete(
    conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool], dry_run: bool
) -> int:
    """Delete the rows ``where`` selects, or only count them in a dry run; the number of rows either way."""
    if dry_run:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())
    return int(conn.execute(sa.delete(table).where(where)).rowcount)


def count_or_update(
    conn: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool], values: dict[str, Any], dry_run: bool
) -> int:
    """Update the rows ``where`` selects with ``values``, or only count them in a dry run."""
    if dry_run:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())
    return int(conn.execute(sa.update(table).where(where).values(**values)).rowcount)


def forget_rows(conn: sa.Connection, table: sa.Table, request: ForgetRequest, report: Report) -> None:
    """The plain forget: every row of the user in ``table`` goes (counted under the table's name)."""
    report.counts[table.name] = count_or_delete(conn, table, request.rows_of(table), report.dry_run)


@dataclass(frozen=True)
class TurnLevelRows:
    """A :class:`UserDataStore` for rows about single turns of a conversation (``action_runs``,
    ``turn_records``): a forgotten user's go; purge deletes those older than ``conversation_days`` by
    ``time_column``. Rows of a conversation Rasa still keeps may be written again by their owner (the
    turn recorder rebuilds a sender's records whole when it has new events); that is the owner's call."""

    rows: sa.Table
    time_column: str

    @property
    def table(self) -> str:
        return self.rows.name

    def forget_user(self, conn: sa.Connection, request: ForgetRequest, report: Report) -> None:
        forget_rows(conn, self.rows, request, report)

    def purge(self, conn: sa.Connection, request: PurgeRequest, report: Report) -> None:
        days = request.policy.conversation_days
        if days:
            old = self.rows.c[self.time_column] < request.before(days)
            report.counts[self.table] = count_or_delete(conn, self.rows, old, report.dry_run)


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


def _check_stores(stores: sa.Engine, tracker: sa.Engine | None) -> list[UserDataStore]:
    """Everything a run needs, checked before anything changes: the tables and a store for each."""
    require_tables(stores, STORE_TABLES, "stores database", "run `python -m app.data migrate`")
    if tracker is not None:
        require_tables(tracker, ("events",), "Rasa tracker store", "is this Rasa's SQL tracker store?")
    return registered_stores()


# --- the two operations ------------------------------------------------------------------------------------


def forget_user(
    tenant_id: str,
    user_id: str,
    *,
    stores: sa.Engine,
    tracker: sa.Engine | None,
    redis_cache: ExternalCache | None = None,
    default_tenant: str | None = None,
    include_pending_jobs: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Report:
    """Delete everything the bot stored about one user of one tenant; other users and tenants are untouched.

    - tracker store: every event of ``<tenant>:<user>``; for the ``default_tenant`` also of the bare
      ``<user>`` (a conversation from a channel without tenancy, which the actions attribute to the default
      tenant: app/identity.py);
    - ``tickets`` (transcripts included), ``notifications``, ``answer_cache`` entries their questions created,
      ``jobs`` (pending refunds kept unless ``include_pending_jobs``: ``KEEP_PENDING_KINDS`` in
      app/integrations/jobs.py);
    - ``llm_calls``: anonymised (see the module docstring);
    - Redis cache entries they created, when ``redis_cache`` (a ``RedisCacheBackend``) is given.

    ``tracker=None`` leaves the tracker store out (its count is then absent from the report). Raises
    :class:`BadInput` for malformed ids and :class:`RetentionError` when a store is unusable; nothing is
    changed then.
    """
    validate_ids(tenant_id, user_id)
    now = _utc(now)
    owners = _check_stores(stores, tracker)
    report = Report("forget_user", dry_run)
    if redis_cache is not None:
        report.counts["redis_cache"] = redis_cache.forget_user(tenant_id, user_id, dry_run=dry_run)

    request = ForgetRequest(tenant_id, user_id, include_pending_jobs)
    with _transactions(stores, tracker) as (ours, theirs):
        if theirs is not None:
            report.counts["tracker_events"] = count_or_delete(
                theirs, tracker_events, user_senders(tenant_id, user_id, default_tenant), dry_run
            )
        for store in owners:
            store.forget_user(ours, request, report)
        if not dry_run:
            _audit(ours, tenant_id, user_hash(user_id), report, now)
    return report


def purge(
    policy: RetentionPolicy,
    *,
    stores: sa.Engine,
    tracker: sa.Engine | None,
    redis_cache: ExternalCache | None = None,
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
    owners = _check_stores(stores, tracker)
    report = Report("purge", dry_run)
    request = PurgeRequest(policy, now)

    if redis_cache is not None and policy.expired_cache:
        report.counts["redis_cache_index"] = redis_cache.purge_expired(now.timestamp(), dry_run=dry_run)

    with _transactions(stores, tracker) as (ours, theirs):
        if theirs is not None and policy.conversation_days:
            stale = (
                sa.select(tracker_events.c.sender_id)
                .group_by(tracker_events.c.sender_id)
                .having(
                    sa.func.max(tracker_events.c.timestamp)
                    < request.before(policy.conversation_days).timestamp()
                )
            )
            report.counts["tracker_events"] = count_or_delete(
                theirs, tracker_events, tracker_events.c.sender_id.in_(stale.scalar_subquery()), dry_run
            )
        for store in owners:
            store.purge(ours, request, report)
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
