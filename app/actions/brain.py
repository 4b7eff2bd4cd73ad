"""The runtime brain the knowledge action uses: router, tier policy, tiered answerer, cache, degradation.

Built once per action-server process from params.yaml (``router``, ``tiers``, ``cache``) on first use. The
knowledge path itself (:mod:`app.orchestration.answering`) is shared with the RAG evaluation, and the bot as a
whole is evaluated by playing conversations through the served stack (``evaluate_bot``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from app.cache.cache import AnswerCache, CacheSettings, build_cache
from app.data.db import get_engine
from app.flags import Flags
from app.llm.config import TiersConfig
from app.llm.policy import TierPolicy, build_policy
from app.llm.tiers import TieredAnswerer
from app.llm.usage import UsageRecorder
from app.observability import metrics
from app.orchestration.router import RouterConfig
from app.reliability.degradation import DegradationController, DegradationSettings
from app.settings import Settings, get_settings


@dataclass
class Brain:
    router: RouterConfig
    policy: TierPolicy
    answerer: TieredAnswerer
    cache: AnswerCache | None
    degradation: DegradationController


def build_brain(settings: Settings | None = None) -> Brain:
    """The brain from the settings' params.yaml sections (``router``, ``tiers``, ``cache``, ``flags``)."""
    settings = settings or get_settings()
    tiers = settings.section("tiers", TiersConfig)
    policy = build_policy(tiers.policy, available=[0, *tiers.endpoints])
    engine = get_engine(settings.db_url)
    from app.actions import services

    # tier 0 is given per question: it quotes the lookup the router and the LLM tiers use (answering.py)
    answerer = TieredAnswerer.from_config(
        tiers, None, policy, usage=UsageRecorder(engine), tools=services.tools()
    )
    cache_settings = CacheSettings.from_settings(settings)
    cache = build_cache(cache_settings, engine=engine) if cache_settings.enabled else None
    degradation = DegradationController(DegradationSettings.from_settings(settings))
    tenants = sorted({settings.tenant, *settings.section("flags", Flags.from_params).tenants})
    metrics.STATE.levels = lambda: {t: int(degradation.level(t)) for t in tenants}
    return Brain(settings.section("router", RouterConfig), policy, answerer, cache, degradation)


_lock = threading.Lock()
_brain: Brain | None = None


def brain() -> Brain:
    """The process's brain, built on first use (thread-safe)."""
    global _brain
    with _lock:
        if _brain is None:
            _brain = build_brain()
        return _brain


def reset() -> None:
    """Forget the built brain (tests; after params change)."""
    global _brain
    with _lock:
        _brain = None
