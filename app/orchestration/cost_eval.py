"""Offline cost evaluation: replay labelled turns through the router and the complexity policy (the very code
the bot runs) and report the share of each handler and tier and the expected model cost per 1000
conversations at the prices in params.yaml.

    python -m app.orchestration.cost_eval TURNS.yml [--turns-per-conversation 4] [--cache-hit-rate 0.2]

``TURNS.yml`` (or .json): a list of turns, each with ``intent``, ``confidence`` and ``question`` (or ``text``),
optionally ``retrieval_confidence``, ``retrieval_margin``, ``supporting_docs``, ``failed_turns``,
``handoff_active``, ``level``. Cost of a knowledge turn at tier *t*: the ``tiers.estimate`` prompt tokens plus
the question's tokens, and the estimated completion tokens, at tier *t*'s prices; skills, handoffs, fallbacks
and tier 0 cost nothing in model tokens. ``--cache-hit-rate`` is the share of LLM answers served by the cache.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from app.llm.config import EXTRACTIVE, TiersConfig
from app.llm.policy import RulePolicy, TierPolicy
from app.orchestration.router import ROUTED, RouterConfig, Turn, decide
from app.settings import get_settings, read_section

_TOKEN = re.compile(r"\w+|[^\w\s]")
TURN_FIELDS = {
    "intent", "confidence", "question", "text", "retrieval_confidence", "retrieval_margin", "supporting_docs",
    "failed_turns", "handoff_active", "level", "label", "expected_handler", "expected_tier",
}  # fmt: skip


def parse_turns(rows: Iterable[Mapping[str, Any]]) -> list[Turn]:
    """Labelled rows -> :class:`Turn` objects; a ValueError naming the row when one is malformed."""
    turns = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, Mapping):
            raise ValueError(f"turn {number}: expected a mapping, got {type(row).__name__}")
        if unknown := set(row) - TURN_FIELDS:
            raise ValueError(f"turn {number}: unknown fields {sorted(unknown)}")
        try:
            turns.append(
                Turn(
                    intent=str(row["intent"]),
                    confidence=float(row["confidence"]),
                    text=str(row.get("question", row.get("text", ""))),
                    retrieval_confidence=None
                    if row.get("retrieval_confidence") is None
                    else float(row["retrieval_confidence"]),
                    retrieval_margin=float(row.get("retrieval_margin", 0.0)),
                    supporting_docs=int(row.get("supporting_docs", 0)),
                    failed_turns=int(row.get("failed_turns", 0)),
                    handoff_active=bool(row.get("handoff_active", False)),
                    level=row.get("level", "full"),
                )
            )
        except KeyError as exc:
            raise ValueError(f"turn {number}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"turn {number}: {exc}") from None
    return turns


def load_turns(path: Path | str) -> list[Turn]:
    """Turns from a YAML or JSON file holding a list."""
    path = Path(path)
    data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a list of turns")
    return parse_turns(data)


@dataclass(frozen=True)
class CostReport:
    """Shares and expected cost of a replay."""

    turns: int
    handler_share: dict[str, float]
    tier_share: dict[int, float]  # among knowledge turns that got a tier
    cost_per_turn: Decimal
    cost_per_1k_conversations: Decimal
    turns_per_conversation: float
    cache_hit_rate: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "turns": self.turns,
            "handler_share": self.handler_share,
            "tier_share": {str(k): v for k, v in self.tier_share.items()},
            "cost_per_turn": str(self.cost_per_turn),
            "cost_per_1k_conversations": str(self.cost_per_1k_conversations),
            "turns_per_conversation": self.turns_per_conversation,
            "cache_hit_rate": self.cache_hit_rate,
        }


def turn_cost(tier: int | None, question: str, tiers: TiersConfig) -> Decimal:
    """Expected model cost of answering at ``tier`` (0 for tier 0, no tier or an unconfigured tier)."""
    if tier is None or tier == EXTRACTIVE or tier not in tiers.endpoints:
        return Decimal(0)
    prompt = tiers.estimate.prompt_tokens + len(_TOKEN.findall(question))
    return tiers.endpoints[tier].cost(prompt, tiers.estimate.completion_tokens)


def evaluate(
    turns: Sequence[Turn],
    *,
    router: RouterConfig | None = None,
    policy: TierPolicy | None = None,
    tiers: TiersConfig | None = None,
    turns_per_conversation: float = 4.0,
    cache_hit_rate: float = 0.0,
) -> CostReport:
    """Replay ``turns`` through :func:`decide` and price the knowledge answers."""
    if not turns:
        raise ValueError("no turns to evaluate")
    if turns_per_conversation <= 0:
        raise ValueError("turns_per_conversation must be positive")
    if not 0 <= cache_hit_rate <= 1:
        raise ValueError("cache_hit_rate must be between 0 and 1")
    tiers = tiers or TiersConfig()
    policy = policy or RulePolicy(available=tiers.available())
    handlers: Counter[str] = Counter()
    tier_counts: Counter[int] = Counter()
    cost = Decimal(0)
    for turn in turns:
        decision = decide(turn, router, policy, log=False)
        handlers[decision.handler] += 1
        if decision.handler == "knowledge" and decision.tier is not None:
            tier_counts[decision.tier] += 1
            cost += turn_cost(decision.tier, turn.text, tiers)
    cost *= Decimal(str(1 - cache_hit_rate))
    per_turn = cost / len(turns)
    knowledge_tiers = sum(tier_counts.values())
    return CostReport(
        turns=len(turns),
        handler_share={h: handlers[h] / len(turns) for h in ROUTED},
        tier_share={t: (tier_counts[t] / knowledge_tiers if knowledge_tiers else 0.0) for t in (0, 1, 2)},
        cost_per_turn=per_turn,
        cost_per_1k_conversations=per_turn * Decimal(str(turns_per_conversation)) * 1000,
        turns_per_conversation=turns_per_conversation,
        cache_hit_rate=cache_hit_rate,
    )


class FixedTierPolicy:
    """A baseline policy: every knowledge answer at one tier (e.g. "always the large model")."""

    def __init__(self, tier: int) -> None:
        self.tier = tier

    def choose_tier(self, features: Any) -> Any:
        from app.llm.policy import Decision

        return Decision(self.tier, f"baseline: always tier {self.tier}")


def compare_policies(
    turns: Sequence[Turn], policies: Mapping[str, TierPolicy], **options: Any
) -> dict[str, CostReport]:
    """The same turns through the same router under each policy (ours and baselines), side by side."""
    return {name: evaluate(turns, policy=policy, **options) for name, policy in policies.items()}


def turns_from_predictions(
    rows: Iterable[Mapping[str, str]], kb: Any, tenant_id: str, *, top_k: int, min_score: float
) -> list[Turn]:
    """Held-out NLU predictions (``served`` intent, ``confidence``, ``text``) -> router turns with the
    retrieval features the bot computes live (:func:`app.orchestration.router.knowledge_turn`)."""
    from app.orchestration.router import knowledge_turn

    turns = []
    for row in rows:
        turn, _ = knowledge_turn(
            kb,
            row["text"],
            tenant_id,
            intent=row.get("served") or row["predicted"],
            confidence=float(row["confidence"]),
            top_k=top_k,
            min_score=min_score,
        )
        turns.append(turn)
    return turns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.orchestration.cost_eval", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("turns", type=Path, help="YAML or JSON list of labelled turns")
    parser.add_argument("--params", type=Path, help="params.yaml (default: the settings' one)")
    parser.add_argument("--turns-per-conversation", type=float, default=4.0)
    parser.add_argument("--cache-hit-rate", type=float, default=0.0)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from app.llm.policy import build_policy

    params_file = args.params or get_settings().params_file
    try:
        tiers = read_section(params_file, "tiers", TiersConfig)
        policy = build_policy(tiers.policy, tiers.available())
        router = read_section(params_file, "router", RouterConfig)
        turns = load_turns(args.turns)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # a missing or invalid file: one line, exit 2
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    report = evaluate(
        turns,
        router=router,
        policy=policy,
        tiers=tiers,
        turns_per_conversation=args.turns_per_conversation,
        cache_hit_rate=args.cache_hit_rate,
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    table = Table(title=f"Routing and cost over {report.turns} labelled turns")
    table.add_column("handler / tier")
    table.add_column("share", justify="right")
    for handler, share in report.handler_share.items():
        table.add_row(handler, f"{share:.1%}")
    for tier, share in report.tier_share.items():
        table.add_row(f"  knowledge at tier {tier}", f"{share:.1%}")
    Console().print(table)
    print(f"expected model cost per 1000 conversations ({report.turns_per_conversation:g} turns each, "
          f"cache hit rate {report.cache_hit_rate:.0%}): {report.cost_per_1k_conversations:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
