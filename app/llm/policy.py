"""The complexity policy: pick the lowest tier expected to answer a question well.

Two policies share one interface, ``choose_tier(features) -> Decision(tier, reason)``:

- :class:`RulePolicy`: transparent thresholds from the ``tiers.policy`` section of params.yaml (served);
- :class:`FixedPolicy`: always one tier: the baselines ``compare_policies`` measures the rules against.

Both only ever return a tier that is available; the answerer escalates from there when a tier fails. (A
learned policy was here; it was removed: it needs turns labelled with the lowest tier that answered well, which
only an evaluation with real LLM tiers and a judge can give, and none had ever been trained.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.llm.config import EXTRACTIVE, LARGE, SMALL, TIERS


@dataclass(frozen=True)
class Features:
    """What the policy sees about a question.

    ``retrieval_confidence``: score of the best retrieved chunk (0-1); ``retrieval_margin``: best minus
    second best; ``supporting_docs``: retrieved chunks above the knowledge cut-off; ``question_words``;
    ``nlu_confidence`` of the intent; ``failed_before``: an earlier turn of this conversation failed;
    ``mentions_account``: the question names the user's own order or ticket, which only a tool can look up
    (the knowledge base cannot answer that part).
    """

    retrieval_confidence: float
    retrieval_margin: float = 0.0
    supporting_docs: int = 0
    question_words: int = 0
    nlu_confidence: float = 1.0
    failed_before: bool = False
    mentions_account: bool = False

    def __post_init__(self) -> None:
        for name in ("retrieval_confidence", "nlu_confidence"):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0 or value != value:
                raise ValueError(f"{name} must be a number in [-1, 1], not {value!r}")
        if self.supporting_docs < 0 or self.question_words < 0:
            raise ValueError("supporting_docs and question_words must not be negative")

    @classmethod
    def from_question(
        cls,
        question: str,
        scores: Sequence[float],
        *,
        min_score: float,
        nlu_confidence: float = 1.0,
        failed_before: bool = False,
    ) -> Features:
        """Features from a question and its retrieval scores (best first)."""
        ordered = sorted((float(s) for s in scores), reverse=True)
        best = ordered[0] if ordered else 0.0
        margin = best - ordered[1] if len(ordered) > 1 else best
        return cls(
            retrieval_confidence=best,
            retrieval_margin=margin,
            supporting_docs=sum(s >= min_score for s in ordered),
            question_words=len(question.split()),
            nlu_confidence=nlu_confidence,
            failed_before=failed_before,
        )


@dataclass(frozen=True)
class Decision:
    """The chosen tier and why (a short, loggable sentence)."""

    tier: int
    reason: str


@runtime_checkable
class TierPolicy(Protocol):
    """Anything that picks a tier from features."""

    def choose_tier(self, features: Features) -> Decision: ...


def _lowest_available(wanted: int, available: Iterable[int]) -> int:
    """``wanted`` if available, else the next higher available tier, else the highest below it."""
    tiers = sorted(set(available))
    if not tiers:
        raise ValueError("no tier is available")
    higher = [t for t in tiers if t >= wanted]
    return higher[0] if higher else tiers[-1]


class RuleThresholds(BaseModel):
    """Thresholds of :class:`RulePolicy` (``tiers.policy`` in params.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extractive_min_confidence: float = Field(0.60, description="tier 0 when retrieval is at least this sure")
    extractive_min_margin: float = Field(0.03, description="... and the best chunk beats the next by this")
    extractive_max_words: int = Field(25, ge=1, description="... and the question is at most this long")
    small_min_confidence: float = Field(0.42, description="tier 1 when retrieval is at least this sure")
    small_min_docs: int = Field(1, ge=0, description="... and at least this many supporting chunks")
    large_min_words: int = Field(40, ge=1, description="longer questions go to tier 2")
    nlu_min_confidence: float = Field(0.5, description="a less sure intent skips tier 0")
    escalate_after_failure: bool = Field(True, description="an earlier failed turn starts one tier higher")
    account_min_tier: int = Field(
        1,
        ge=0,
        le=2,
        description="questions naming the user's order/ticket start here (LLM tiers have tools)",
    )


class RulePolicy:
    """Transparent thresholds; every decision names the rule that made it."""

    def __init__(self, thresholds: RuleThresholds | None = None, available: Iterable[int] = TIERS) -> None:
        self.thresholds = thresholds or RuleThresholds()
        self.available = tuple(sorted(set(available)))

    @classmethod
    def from_params(cls, section: dict[str, Any] | None, available: Iterable[int] = TIERS) -> RulePolicy:
        """Build from the ``tiers.policy`` mapping; a clear ValueError when it is invalid."""
        try:
            return cls(RuleThresholds.model_validate(section or {}), available)
        except ValidationError as exc:
            raise ValueError(f"invalid `tiers.policy` section in params.yaml: {exc}") from exc

    def choose_tier(self, features: Features) -> Decision:
        t = self.thresholds
        f = features
        if f.question_words >= t.large_min_words:
            tier, reason = LARGE, f"long question ({f.question_words} >= {t.large_min_words} words)"
        elif (
            f.retrieval_confidence >= t.extractive_min_confidence
            and f.retrieval_margin >= t.extractive_min_margin
            and f.question_words <= t.extractive_max_words
            and f.nlu_confidence >= t.nlu_min_confidence
        ):
            tier, reason = (
                EXTRACTIVE,
                (
                    f"retrieval sure ({f.retrieval_confidence:.2f} >= {t.extractive_min_confidence}, "
                    f"margin {f.retrieval_margin:.2f}) and question short"
                ),
            )
        elif f.retrieval_confidence >= t.small_min_confidence and f.supporting_docs >= t.small_min_docs:
            tier, reason = (
                SMALL,
                (
                    f"retrieval fair ({f.retrieval_confidence:.2f} >= {t.small_min_confidence}, "
                    f"{f.supporting_docs} supporting docs)"
                ),
            )
        else:
            tier, reason = LARGE, f"retrieval weak ({f.retrieval_confidence:.2f} < {t.small_min_confidence})"
        if f.failed_before and t.escalate_after_failure and tier < LARGE:
            tier, reason = tier + 1, f"{reason}; one tier up after an earlier failure"
        if f.mentions_account and tier < t.account_min_tier:
            tier, reason = (
                t.account_min_tier,
                f"{reason}; names the user's order, so tier {t.account_min_tier} (tools)",
            )
        return _finish(tier, reason, self.available)


def _finish(tier: int, reason: str, available: Sequence[int]) -> Decision:
    chosen = _lowest_available(tier, available)
    if chosen != tier:
        reason = f"{reason}; tier {tier} unavailable, using tier {chosen}"
    return Decision(chosen, reason)


class FixedPolicy:
    """Always the same tier (when available; else the next one up): the baselines the tiered policy is
    compared with (``compare_policies``: tier 0 only, always tier 1, always tier 2)."""

    def __init__(self, tier: int, available: Iterable[int] = TIERS) -> None:
        if tier not in TIERS:
            raise ValueError(f"tiers.policy.tier must be one of {list(TIERS)}, not {tier!r}")
        self.tier = tier
        self.available = tuple(sorted(set(available)))

    def choose_tier(self, features: Features) -> Decision:
        return _finish(self.tier, f"fixed policy: always tier {self.tier}", self.available)


def build_policy(section: dict[str, Any] | None, available: Iterable[int]) -> TierPolicy:
    """The policy the ``tiers.policy`` section asks for: ``kind: rules`` (default), or ``kind: fixed`` with
    ``tier`` (the baselines compare_policies measures the rules against)."""
    section = dict(section or {})
    kind = section.pop("kind", "rules")
    if kind == "rules":
        return RulePolicy.from_params(section, available)
    if kind == "fixed":
        return FixedPolicy(int(section.get("tier", 0)), available)
    raise ValueError(f"tiers.policy.kind must be 'rules' or 'fixed', not {kind!r}")
