"""The runtime brain the knowledge action uses: router, tier policy, tiered answerer, cache, degradation.

Built once per action-server process from params.yaml (``router``, ``tiers``, ``cache``) on first use. The
same ``decide()`` and policy run offline in ``app.orchestration.cost_eval``: what we evaluate is what we
deploy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import yaml

from app.cache.cache import AnswerCache, CacheSettings, build_cache
from app.data.db import get_engine
from app.llm.config import load_tiers_config
from app.llm.policy import TierPolicy, build_policy
from app.llm.tiers import AnswerRequest, TieredAnswerer
from app.llm.usage import UsageRecorder
from app.observability import metrics
from app.orchestration.router import RouterConfig
from app.reliability.degradation import DegradationController, DegradationSettings
from app.settings import get_settings


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
        int(params.get("knowledge_top_k", 3)),
        float(params.get("knowledge_min_score", 0.35)),
    )
    return answer.text if answer.answered else None


def build_brain(params: dict[str, Any]) -> Brain:
    settings = get_settings()
    tiers = load_tiers_config(section=params.get("tiers") or {})
    policy = build_policy(tiers.policy, available=[0, *tiers.endpoints])
    engine = get_engine(settings.db_url)
    from app.actions import services

    answerer = TieredAnswerer.from_config(
        tiers, extractive_answer, policy, usage=UsageRecorder(engine), tools=services.tools()
    )
    cache_settings = CacheSettings.from_params(params.get("cache") or {})
    cache = build_cache(cache_settings, engine=engine) if cache_settings.enabled else None
    degradation = DegradationController(
        DegradationSettings.from_params((params.get("router") or {}).get("degradation"))
    )
    tenants = sorted({settings.tenant, *((params.get("flags") or {}).get("tenants") or {})})
    metrics.STATE.levels = lambda: {t: int(degradation.level(t)) for t in tenants}
    return Brain(RouterConfig.from_params(params.get("router") or {}), policy, answerer, cache, degradation)


_lock = threading.Lock()
_brain: Brain | None = None


def brain() -> Brain:
    """The process's brain, built on first use (thread-safe)."""
    global _brain
    with _lock:
        if _brain is None:
            _brain = build_brain(yaml.safe_load(get_settings().params_file.read_text()) or {})
        return _brain


def reset() -> None:
    """Forget the built brain (tests; after params change)."""
    global _brain
    with _lock:
        _brain = None
