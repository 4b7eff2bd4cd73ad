"""One bot-level evaluation: start the served stack on a model, an index and a params file, seed the set's CRM
fixtures, play the conversations through the gateway, read back the turn records, and score them.

The stack is the one ``make run`` starts (:class:`app.stack.Stack`: CRM service, action server, Rasa, gateway,
turn recorder), on free loopback ports and a fresh state folder, so every run starts from empty stores and
nothing of an earlier run leaks into this one. The LLM tiers are whatever the params file configures: with
no endpoint the served configuration is tier 0 only, and the figures say so.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from pydantic import SecretStr

from app.analytics.turn_records import load_records
from app.data.db import get_engine, tracker_store_url
from app.data.schema import llm_calls
from app.data.seed import seed_customers
from app.evaluation.checks import TurnResult, score
from app.evaluation.conversations import ConversationSet
from app.evaluation.metrics import compute
from app.evaluation.player import PlayedTurn, Player
from app.identity import conversation_id
from app.llm.config import TiersConfig
from app.settings import Settings, read_section
from app.stack import Stack
from app.supervisor import StackError

logger = structlog.get_logger(__name__)

SERVICES = ("crm", "actions", "rasa", "gateway", "recorder")
NO_LLM = "no LLM endpoint: LLM tiers not evaluated"
STAND_IN = "LLM tiers on a stand-in model (the local test server): LLM answer quality not measured"


@dataclass
class Evaluation:
    """What one run played, what came back, and the figures."""

    conversations: ConversationSet
    played: dict[str, list[PlayedTurn]]
    records: list[dict[str, Any]]
    results: list[TurnResult]
    metrics: dict[str, Any]
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)  # the LLM calls the records reference

    def tiers_used(self, results: Sequence[TurnResult] | None = None) -> dict[str, float]:
        """Share of the knowledge answers (of ``results``, all by default) by the tier that gave them
        (``cache`` for cache hits)."""
        used = [
            "cache" if r.record.get("cache") else f"tier{r.record.get('tier_used')}"
            for r in (self.results if results is None else results)
            if r.record is not None and r.record.get("handler") == "knowledge"
        ]
        return {k: round(used.count(k) / len(used), 4) for k in sorted(set(used))} if used else {}

    def by_tenant(self) -> dict[str, dict[str, Any]]:
        """Per tenant of the conversations: their task completion, cost per 1000 conversations and tier shares
        (one tenant's questions may go to dearer tiers than another's: its answerability runs lower)."""
        out = {}
        for tenant in sorted({c.tenant for c in self.conversations.conversations}):
            conversations = [c for c in self.conversations.conversations if c.tenant == tenant]
            ids = {c.id for c in conversations}
            results = [r for r in self.results if r.conversation in ids]
            figures = compute(conversations, results, self.calls)
            out[tenant] = {
                "conversations": len(conversations),
                "task_completion": figures["task_completion"],
                "cost_per_1000_conversations": figures["cost_per_1000_conversations"],
                "tiers_used": self.tiers_used(results),
            }
        return out

    def latency_p50(self) -> float | None:
        """Median end-to-end time of a turn through the gateway, milliseconds."""
        from app.analytics.stats import percentile

        return percentile([r.played.elapsed_ms for r in self.results if r.played.status == 200], 50)


def llm_note(params_file: Path) -> tuple[str, list[str]]:
    """How the LLM tiers of ``params_file`` are served: ``none``, ``stand-in`` or ``configured``, and the
    notes the outputs must carry. A stand-in is recognised by the test server's model listing."""
    tiers = read_section(params_file, "tiers", TiersConfig)
    if not tiers.endpoints:
        return "none", [NO_LLM]
    for endpoint in tiers.endpoints.values():
        try:
            listing = httpx.get(f"{endpoint.base_url}/models", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            continue
        if any(m.get("owned_by") == "switchboard-test" for m in listing.get("data", [])):
            return "stand-in", [STAND_IN]
    return "configured", []


def stack_settings(base: Settings, model: Path, index: Path, params_file: Path, state_dir: Path) -> Settings:
    """``base`` on free ports and a fresh state folder, serving ``model`` and ``index`` with ``params_file``."""
    return on_free_ports(base).model_copy(
        update={
            "state_dir": state_dir,
            "database_url": "",
            "tracker_store_db": "",
            "tracker_store_url": "",
            "lock_store_url": "",
            "rasa_replicas": 1,
            "gateway_upstreams": "",
            "gateway_canary_upstreams": "",
            "model_path": model.resolve(),
            "index_dir": index.resolve(),
            "params_file": params_file.resolve(),
            "jwt_secret": SecretStr(secrets.token_urlsafe(32)),
        }
    )


PORTS = (
    "rasa_port",
    "action_port",
    "gateway_port",
    "recorder_port",
    "streamlit_port",
    "canary_port",
    "crm_port",
)


def on_free_ports(settings: Settings) -> Settings:
    """``settings`` with every service on a free port of its own (none the same)."""
    from app.scaleout import free_ports

    return settings.model_copy(update=free_ports(settings.host, PORTS))


class EvaluationStack:
    """The served stack for evaluations: started once, seeded with fixtures, then any number of runs; the
    action server can be restarted with other params between runs (:meth:`serve_with`) and the conversations'
    users erased from every store (:meth:`forget`), so each run starts from empty conversations and caches."""

    #: How often the stack is started before a port taken by another process is reported.
    STARTS = 3

    def __init__(self, settings: Settings, start: Callable[[Any], None] | None = None) -> None:
        self.stack = Stack(settings, services=SERVICES)
        self._start = start or (lambda s: s.start())

    def __enter__(self) -> EvaluationStack:
        # A port free when chosen can be taken by another process before its service binds it (seconds later,
        # on a busy machine): the stack is then started again on other free ports, at most STARTS times in all.
        attempt = 1
        while True:
            try:
                self._start(self.stack)
                return self
            except StackError as error:
                if "Address already in use" not in str(error) or attempt == self.STARTS:
                    raise
                logger.warning("evaluation.ports_taken", error=str(error).splitlines()[0], attempt=attempt)
                attempt += 1
                self.stack = Stack(on_free_ports(self.settings), services=SERVICES)

    def __exit__(self, *exc: object) -> None:
        self.stack.stop()

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    def seed(self, customers: Sequence[Any]) -> None:
        """The conversation set's CRM fixtures, into the stack's own store."""
        seed_customers(get_engine(self.settings.db_url), customers)

    def serve_with(self, params_file: Path) -> None:
        """Restart the action server (the only service that reads tiers, cache and router) with ``params_file``."""
        self.stack.settings = self.settings.model_copy(update={"params_file": params_file.resolve()})
        self.stack.kill("actions")
        self.stack.restart("actions", timeout=120)

    def run(
        self,
        conversations: ConversationSet,
        *,
        concurrency: int = 1,
        similarity: Callable[[list[tuple[str, str, str]]], dict[str, float | None]] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Evaluation:
        """Play the conversations, read back their turn records (after the recorder synced), score them."""
        settings = self.settings
        player = Player(
            settings.gateway_url,
            settings.crm_url,
            settings.jwt_secret.get_secret_value(),
            secrets.token_hex(4),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
        played = player.play_all(conversations.conversations, concurrency=concurrency, progress=progress)
        synced = httpx.post(f"http://{settings.host}:{settings.recorder_port}/sync", timeout=300)
        synced.raise_for_status()
        records = load_records(settings.db_url, conversation_ids=senders(conversations))
        results = score(conversations.conversations, played, records)
        calls = _calls(settings.db_url, [i for r in records for i in r.get("llm_call_ids") or []])
        metrics = compute(conversations.conversations, results, calls, similarity)
        return Evaluation(conversations, played, records, results, metrics, calls)

    def forget(self, conversations: ConversationSet) -> None:
        """Erase the conversations' users from the tracker and every store (per-user erasure), CRM left."""
        import app.data.__main__  # noqa: F401 - registers every store's retention handler
        from app.data.retention import forget_user

        stores, tracker = get_engine(self.settings.db_url), get_engine(tracker_store_url(self.settings))
        for conversation in conversations.conversations:
            forget_user(conversation.tenant, conversation.user, stores=stores, tracker=tracker,
                        include_pending_jobs=True)  # fmt: skip


def senders(conversations: ConversationSet) -> list[str]:
    """The Rasa sender ids (``<tenant>:<user>``) of the conversations."""
    return sorted({conversation_id(c.tenant, c.user) for c in conversations.conversations})


def evaluate(
    conversations: ConversationSet,
    settings: Settings,
    *,
    concurrency: int = 1,
    similarity: Callable[[list[tuple[str, str, str]]], dict[str, float | None]] | None = None,
    progress: Callable[[int], None] | None = None,
    start: Callable[[Any], None] | None = None,
) -> Evaluation:
    """One run on a stack of its own (see :func:`stack_settings`): start, seed, play, read back, score, stop.
    ``start(stack)`` starts it (tests put their socket guard around it)."""
    with EvaluationStack(settings, start) as stack:
        stack.seed(conversations.customers)
        return stack.run(conversations, concurrency=concurrency, similarity=similarity, progress=progress)


def _calls(url: str, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    with get_engine(url).connect() as conn:
        rows = conn.execute(sa.select(llm_calls).where(llm_calls.c.id.in_(list(ids)))).mappings()
        return {int(r["id"]): dict(r) for r in rows}


def temporary_state() -> tempfile.TemporaryDirectory:
    """A fresh state folder for one run's stores and logs (removed afterwards)."""
    return tempfile.TemporaryDirectory(prefix="switchboard-eval-")
