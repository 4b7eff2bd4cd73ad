"""Background jobs of the CRM service: stored rows, run by a worker thread, retried until done.

A job is queued as a ``pending`` row with ``run_after``; the worker runs due jobs one at a time. Each
step is idempotent (its notification has a ``source_key``), and a job is marked ``done`` in the same
transaction as its effect, so a service killed mid-job runs it again on restart and nothing is lost or
doubled. A failed attempt increments ``attempts``, records the error and backs off (capped).

Kinds:
- ``refund``: refund an order, then tell the user (a notification).
- ``ticket_webhook``: POST a ticket event to the ticket webhook URL until it answers 2xx.

Retention (app/data/retention.py) erases and ages jobs through :class:`JobRetention`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import structlog

from app.data import retention
from app.data.schema import jobs
from app.integrations.crm import CrmStore
from app.integrations.notifications import NotificationStore

logger = structlog.get_logger(__name__)

MAX_BACKOFF_S = 30.0
# Pending jobs of these kinds are kept by forget-user unless asked: deleting a queued refund would cancel
# money owed to the user (and the worker may be running it right now). Other pending jobs (ticket webhooks
# about tickets being erased) are deleted.
KEEP_PENDING_KINDS = ("refund",)


def _utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes; ours are all UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class JobStore:
    """The ``jobs`` table."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def enqueue(
        self,
        tenant_id: str,
        user_id: str,
        conversation_id: str,
        kind: str,
        payload: dict[str, Any],
        delay_s: float = 0.0,
    ) -> int:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            return conn.execute(
                sa.insert(jobs).values(
                    tenant_id=tenant_id,
                    user_id=user_id,
                    conversation_id=conversation_id,
                    kind=kind,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    run_after=now + timedelta(seconds=delay_s),
                    created_at=now,
                )
            ).inserted_primary_key[0]

    def get(self, tenant_id: str, job_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(jobs).where(jobs.c.tenant_id == tenant_id, jobs.c.id == job_id))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def for_user(self, tenant_id: str, user_id: str, kind: str) -> list[dict]:
        query = (
            sa.select(jobs)
            .where(jobs.c.tenant_id == tenant_id, jobs.c.user_id == user_id, jobs.c.kind == kind)
            .order_by(jobs.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def due(self, now: datetime | None = None, limit: int = 20) -> list[dict]:
        """Pending jobs whose time has come, oldest first."""
        now = now or datetime.now(UTC)
        query = (
            sa.select(jobs)
            .where(jobs.c.status == "pending", jobs.c.run_after <= now)
            .order_by(jobs.c.run_after, jobs.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def mark_done(self, conn: sa.Connection, job_id: int) -> None:
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                status="done", attempts=jobs.c.attempts + 1, finished_at=datetime.now(UTC), last_error=None
            )
        )

    def mark_failed_attempt(self, job: dict, error: str) -> None:
        backoff = min(MAX_BACKOFF_S, 0.5 * 2 ** job["attempts"])
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job["id"])
                .values(
                    attempts=jobs.c.attempts + 1,
                    last_error=error[:500],
                    run_after=datetime.now(UTC) + timedelta(seconds=backoff),
                )
            )


def refund_text(order_id: str, amount: str) -> str:
    return (
        f"Good news: your refund of EUR {amount} for order {order_id} has been processed. "
        "It will reach your account within 3-5 business days."
    )


def ticket_event_text(event: dict[str, Any]) -> str:
    return f"Your ticket #{event['ticket_id']} is now {event['status']}."


class JobWorker:
    """Runs due jobs; ``start()`` runs them in a daemon thread every ``poll_s`` seconds until ``stop()``."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        webhook_url: Callable[[], str],
        webhook_timeout_s: float = 5.0,
        poll_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.store = JobStore(engine)
        self.notifications = NotificationStore(engine)
        self.crm = CrmStore(engine)
        self.webhook_url = webhook_url
        self.webhook_timeout_s = webhook_timeout_s
        self.poll_s = poll_s
        self._transport = transport
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> int:
        """Run every due job once; return how many finished."""
        done = 0
        for job in self.store.due():
            log = logger.bind(
                job_id=job["id"],
                kind=job["kind"],
                tenant_id=job["tenant_id"],
                user_id=job["user_id"],
                attempt=job["attempts"] + 1,
            )
            try:
                self._run(job)
            except Exception as exc:  # any failure: keep the job, try again later
                self.store.mark_failed_attempt(job, f"{type(exc).__name__}: {exc}")
                log.warning("job.failed_attempt", error=str(exc)[:200])
                continue
            done += 1
            log.info("job.done")
        return done

    def _run(self, job: dict) -> None:
        if job["kind"] == "refund":
            self._refund(job)
        elif job["kind"] == "ticket_webhook":
            self._post_webhook(job)
        else:
            raise ValueError(f"unknown job kind {job['kind']!r}")

    def _refund(self, job: dict) -> None:
        payload = job["payload"]
        order = self.crm.get_order(job["tenant_id"], payload["order_id"])
        if order is None:
            raise LookupError(f"order {payload['order_id']} vanished")
        with self.engine.begin() as conn:  # the user's notification and the job's end: one transaction
            self.notifications.add(
                conn,
                job["tenant_id"],
                job["user_id"],
                job["conversation_id"],
                f"job:{job['id']}",
                refund_text(order.order_id, str(order.total_eur)),
            )
            self.store.mark_done(conn, job["id"])

    def _post_webhook(self, job: dict) -> None:
        timeout = httpx.Timeout(self.webhook_timeout_s, connect=min(self.webhook_timeout_s, 2.0))
        with httpx.Client(timeout=timeout, transport=self._transport) as http:
            response = http.post(self.webhook_url(), json=job["payload"])
        if not 200 <= response.status_code < 300:
            raise RuntimeError(f"webhook answered HTTP {response.status_code}: {response.text[:200]}")
        with self.engine.begin() as conn:
            self.store.mark_done(conn, job["id"])

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="job-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception as exc:  # the database may be briefly unavailable: keep polling
                logger.error("job.worker_error", error=str(exc)[:200])
            self._stop.wait(self.poll_s)


class JobRetention:
    """Jobs under retention: a forgotten user's go, but their pending refunds only when asked (reported
    otherwise); purge ages out ``done`` jobs by the time they finished."""

    table = "jobs"

    def forget_user(
        self, conn: sa.Connection, request: retention.ForgetRequest, report: retention.Report
    ) -> None:
        keep_pending = (
            sa.and_(jobs.c.status != "done", jobs.c.kind.in_(KEEP_PENDING_KINDS))
            if not request.include_pending_jobs
            else sa.false()
        )
        mine = request.rows_of(jobs)
        report.counts["jobs"] = retention.count_or_delete(
            conn, jobs, sa.and_(mine, sa.not_(keep_pending)), report.dry_run
        )
        kept = int(
            conn.execute(sa.select(sa.func.count()).select_from(jobs).where(mine, keep_pending)).scalar_one()
        )
        if kept:
            report.notes.append(
                f"{kept} pending refund job(s) kept (money owed to the user); run forget-user again once "
                "they are done, or pass --include-pending-jobs to cancel them"
            )

    def purge(self, conn: sa.Connection, request: retention.PurgeRequest, report: retention.Report) -> None:
        if not request.policy.job_days:
            return
        old = sa.and_(jobs.c.status == "done", jobs.c.finished_at < request.before(request.policy.job_days))
        report.counts["jobs"] = retention.count_or_delete(conn, jobs, old, report.dry_run)


retention.register(JobRetention())
