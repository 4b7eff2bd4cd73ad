"""Token usage and cost of every LLM call, stored in the ``llm_calls`` table (migration 0002).

Retention (app/data/retention.py) anonymises and ages these rows through :class:`LlmCallRetention`: tokens
and cost are the tenant's spend, so a forgotten user's calls lose their ids rather than disappear.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa

from app.data import retention
from app.data.schema import llm_calls
from app.llm.client import CallRecord


class UsageRecorder:
    """Writes one ``llm_calls`` row per call (the :class:`app.llm.client.UsageSink` of our stores)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, call: CallRecord) -> None:
        """Store one call record."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(llm_calls).values(
                    tenant_id=call.context.tenant_id,
                    user_id=call.context.user_id,
                    conversation_id=call.context.conversation_id,
                    correlation_id=call.context.correlation_id[:128],
                    tier=call.tier,
                    model=call.model,
                    prompt_tokens=call.prompt_tokens,
                    completion_tokens=call.completion_tokens,
                    cost=call.cost,
                    latency_ms=int(round(call.latency_s * 1000)),
                    attempts=call.attempts,
                    outcome=call.outcome,
                    error=call.error[:500] or None,
                    created_at=datetime.now(UTC),
                )
            )

    def calls(self, tenant_id: str, conversation_id: str | None = None) -> list[dict]:
        """The tenant's recorded calls (optionally of one conversation), oldest first."""
        query = sa.select(llm_calls).where(llm_calls.c.tenant_id == tenant_id).order_by(llm_calls.c.id)
        if conversation_id is not None:
            query = query.where(llm_calls.c.conversation_id == conversation_id)
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def totals(self, tenant_id: str) -> UsageTotals:
        """Calls, tokens and cost of one tenant so far."""
        query = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(llm_calls.c.prompt_tokens), 0),
            sa.func.coalesce(sa.func.sum(llm_calls.c.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(llm_calls.c.cost), 0),
        ).where(llm_calls.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            calls, prompt, completion, cost = conn.execute(query).one()
        return UsageTotals(int(calls), int(prompt), int(completion), Decimal(str(cost)))


@dataclass(frozen=True)
class UsageTotals:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal


# What an anonymised row keeps of its user: nothing (the error text may quote model output about them).
ANONYMISED = {"user_id": retention.FORGOTTEN, "conversation_id": "", "error": None}


class LlmCallRetention:
    """LLM calls under retention: a forgotten user's are anonymised; purge deletes calls older than
    ``llm_call_days`` and anonymises those older than ``llm_call_anonymise_days``."""

    table = "llm_calls"

    def forget_user(
        self, conn: sa.Connection, request: retention.ForgetRequest, report: retention.Report
    ) -> None:
        report.counts["llm_calls_anonymised"] = retention.count_or_update(
            conn, llm_calls, request.rows_of(llm_calls), ANONYMISED, report.dry_run
        )

    def purge(self, conn: sa.Connection, request: retention.PurgeRequest, report: retention.Report) -> None:
        policy = request.policy
        if policy.llm_call_days:
            report.counts["llm_calls_deleted"] = retention.count_or_delete(
                conn, llm_calls, llm_calls.c.created_at < request.before(policy.llm_call_days), report.dry_run
            )
        if policy.llm_call_anonymise_days:
            old = llm_calls.c.created_at < request.before(policy.llm_call_anonymise_days)
            if policy.llm_call_days:  # rows the delete above removes are not anonymised too (dry-run counts)
                old = sa.and_(old, llm_calls.c.created_at >= request.before(policy.llm_call_days))
            report.counts["llm_calls_anonymised"] = retention.count_or_update(
                conn,
                llm_calls,
                sa.and_(old, llm_calls.c.user_id != retention.FORGOTTEN),
                ANONYMISED,
                report.dry_run,
            )


retention.register(LlmCallRetention())
