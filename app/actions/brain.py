"""The runtime brain the knowledge action uses: router, tier policy, tiered answerer, cache, degradation.

Built once per action-server process from params.yaml (``router``, ``tiers``, ``cache``) on first use. The
same ``decide()`` and policy run offline in ``app.orchestration.cost_eval``: what we evaluate is what we
deploy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from app.cache.cache import AnswerCache, CacheSettings, build_cache
from app.data.db import get_engine
from app.flags import Flags
from app.llm.config import TiersConfig
from app.llm.policy import TierPolicy, build_policy
from app.llm.tiers import AnswerRequest, TieredAnswerer
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


def extractive_answer(request: AnswerRequest) -> str | None:
    """Tier 0: the knowledge base's extractive answer (with its source), or None when it does not know."""
    from app.actions import services

    params = get_settings().serve_params()
    answer = services.knowledge().answer(
        request.question,
        request.context.tenant_id,
        get_settings().serve().knowledge_top_k,
        float(params.get("knowledge_min_score", 0.35)),
    )
    return answer.text if answer.answered else None


def build_brain(settings: Settings | None = None) -> Brain:
    """The brain from the settings' params.yaml sections (``router``, ``tiers``, ``cache``, ``flags``)."""
    settings = settings or get_settings()
    tiers = settings.section("tiers", TiersConfig)
    policy = build_policy(tiers.policy, available=[0, *tiers.endpoints])
    engine = get_engine(settings.db_url)
    from app.actions import services

    answerer = TieredAnswerer.from_config(
        tiers, extractive_answer, policy, usage=UsageRecorder(engine), tools=services.tools()
    )
    cache_settings = CacheSettings.from_settings(settings)
    cache = build_cache(cache_settings, engine=engine) if cache_settings.enabled else None
    degradation = DegradationController(
        settings.section("router.degradation", DegradationSettings.from_params)
    )
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
