"""Generated answers through model tiers: configuration, clients, the complexity policy and escalation.

Tier 0 is extractive (no LLM: a callable the caller supplies), tier 1 a small LLM, tier 2 a large LLM; each LLM
tier is an OpenAI-compatible endpoint configured in the ``tiers`` section of ``params.yaml``. The knowledge
action uses them through ``app.actions.brain``; the LLM tiers may call the read-only tools of ``app.tools``.
"""

from app.llm.client import LLMResult, TierClient, TierUnavailable
from app.llm.config import TierConfig, TiersConfig, load_tiers_config
from app.llm.policy import Decision, Features, FixedPolicy, RulePolicy, TierPolicy
from app.llm.tiers import AnswerOutcome, AnswerRequest, TieredAnswerer

__all__ = [
    "AnswerOutcome",
    "AnswerRequest",
    "Decision",
    "Features",
    "LLMResult",
    "FixedPolicy",
    "RulePolicy",
    "TierClient",
    "TierConfig",
    "TierPolicy",
    "TierUnavailable",
    "TiersConfig",
    "TieredAnswerer",
    "load_tiers_config",
]
