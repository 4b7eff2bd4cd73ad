"""DVC stage ``evaluate_cost``: the held-out NLU turns through the bot's router and tier policy, priced.

    python -m pipelines.evaluate_cost --predictions nlu/results/predictions.csv --index knowledge/index \\
        --out knowledge/results/cost_eval.json --plot knowledge/results/cost_eval.png

Every held-out utterance (the intent the served model predicted, its confidence, the text) gets the same
retrieval features the knowledge action computes live, then goes through ``decide()`` with the tier policy
of params.yaml: the routing the bot would do. Knowledge answers are priced with ``tiers.estimate`` tokens at
each tier's price: the configured endpoints', else ``evaluate_cost.reference_prices`` (so the evaluation
means something before endpoints are configured). Baselines in the same run: every knowledge answer at
tier 1, and at tier 2 (no tiering). Writes the reports as JSON (a DVC metric) and a bar chart, and logs
them to MLflow. A missing input prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from app.offline import apply_offline_env
from pipelines._common import base_params, load_params, serve_params, stage_run, write_json

STAGE = "evaluate_cost"


def main(argv: Sequence[str] | None = None) -> int:
    apply_offline_env()
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=Path, required=True, help="evaluate_nlu's predictions.csv")
    parser.add_argument("--index", type=Path, required=True, help="the knowledge index")
    parser.add_argument("--out", type=Path, required=True, help="report (JSON)")
    parser.add_argument("--plot", type=Path, required=True, help="bar chart (PNG)")
    args = parser.parse_args(argv)
    params = load_params(STAGE)
    serve, tiers_section = load_params("serve"), load_params("tiers")
    from app.llm.config import load_tiers_config
    from app.llm.policy import build_policy
    from app.orchestration.cost_eval import FixedTierPolicy, compare_policies, turns_from_predictions
    from app.orchestration.router import RouterConfig

    endpoints = dict(tiers_section.get("endpoints") or {})
    for tier, prices in (params.get("reference_prices") or {}).items():
        if not endpoints.get(tier):  # unconfigured tiers are priced at the reference prices
            endpoints[tier] = {
                "base_url": "http://reference.invalid/v1",
                "model": prices["model"],
                "price_in_per_1k": prices["in"],
                "price_out_per_1k": prices["out"],
            }
    tiers = load_tiers_config(section={**tiers_section, "endpoints": endpoints})
    try:
        with args.predictions.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        from knowledge.retrieval import KnowledgeBase

        kb = KnowledgeBase.load(args.index)
    except (OSError, ValueError) as exc:
        print(f"{STAGE}: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    tenant = base_params().tenant
    from tqdm import tqdm

    turns = turns_from_predictions(
        tqdm(rows, desc="routing held-out turns", unit="turn"),
        kb,
        tenant,
        top_k=serve_params().knowledge_top_k,
        min_score=float(serve.get("knowledge_min_score", 0.3)),
    )
    policies = {
        "tiered (ours)": build_policy(tiers_section.get("policy"), tiers.available()),
        "always tier 1": FixedTierPolicy(1),
        "always tier 2": FixedTierPolicy(2),
    }
    options = {
        "router": RouterConfig.from_params(load_params("router")),
        "tiers": tiers,
        "turns_per_conversation": float(params.get("turns_per_conversation", 4)),
        "cache_hit_rate": float(params.get("cache_hit_rate", 0.0)),
    }
    with stage_run(STAGE, params):
        import mlflow

        reports = compare_policies(turns, policies, **options)
        ours = reports["tiered (ours)"]
        report = {
            **ours.as_dict(),
            "prices": {
                str(t): {
                    "model": c.model,
                    "in_per_1k": str(c.price_in_per_1k),
                    "out_per_1k": str(c.price_out_per_1k),
                }
                for t, c in tiers.endpoints.items()
            },
            "baselines": {name: r.as_dict() for name, r in reports.items() if name != "tiered (ours)"},
        }
        write_json(args.out, report)
        mlflow.log_metrics(
            {
                "cost_per_1k_conversations": float(ours.cost_per_1k_conversations),
                **{f"tier_share_{t}": share for t, share in ours.tier_share.items()},
                **{f"handler_share_{h}": share for h, share in ours.handler_share.items()},
                "cost_per_1k_always_tier2": float(reports["always tier 2"].cost_per_1k_conversations),
            }
        )
        plot(reports, args.plot)
        mlflow.log_artifact(str(args.plot))
    base = reports["always tier 2"].cost_per_1k_conversations
    saving = 1 - float(ours.cost_per_1k_conversations / base) if base else 0.0
    print(
        f"{STAGE}: {ours.turns} turns; cost per 1000 conversations {ours.cost_per_1k_conversations:.4f} "
        f"(always tier 2: {base:.4f}, {saving:.0%} less); knowledge tiers "
        + ", ".join(f"{t}: {share:.0%}" for t, share in ours.tier_share.items())
    )
    return 0


def plot(reports: dict, path: Path) -> None:
    """Cost per 1000 conversations per policy, and the tier mix of ours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(reports)
    left.bar(
        names,
        [float(r.cost_per_1k_conversations) for r in reports.values()],
        color=["#2a9d8f", "#aaa", "#888"],
    )
    left.set_ylabel("model cost per 1000 conversations")
    left.set_title("Routing policy vs no tiering")
    ours = reports[names[0]]
    right.bar([f"tier {t}" for t in ours.tier_share], list(ours.tier_share.values()), color="#2a9d8f")
    right.set_ylim(0, 1)
    right.set_title("Knowledge answers by tier (ours)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
