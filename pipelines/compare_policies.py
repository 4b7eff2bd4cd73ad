"""DVC stage ``compare_policies``: tier policies compared by the bot-level harness, on the real stack.

    python -m pipelines.compare_policies --model nlu/serving/model.tar.gz --index knowledge/index \\
        --domain nlu/domain.yml --conversations nlu/conversations/frozen.yml --out nlu/results/policies

One stack (gateway, Rasa, CRM service, turn recorder) serves every policy; the action server is restarted
with each policy's params (``tiers.policy`` and ``cache.enabled`` switched, everything else as served), the
same conversations are played, and the conversations' users are erased from every store before the next
policy (per-user erasure, :mod:`app.data.retention`), so each policy starts from empty conversations and an
empty answer cache. Policies (``compare_policies.policies``): the served one (tiered), tier 0 only, always
tier 1, always tier 2; each with and without the answer cache.

Writes ``policies.json`` (the figures per policy, with each tenant's task completion, cost and tier shares
under ``by_tenant``), ``policies.csv`` and ``pareto.png`` (cost per 1000 conversations against task
completion). A policy that asks for a tier with no endpoint is served by the next
available one (tier 0 when no LLM is configured): the table says so, and so does a stand-in model (LLM answer
quality is then not measured; cost, routing and tier-0 quality still are).
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from app.offline import apply_offline_env
from pipelines._common import load_params, log_metrics, stage_run, write_json

STAGE = "compare_policies"
POLICIES: dict[str, dict[str, Any]] = {
    "tiered": {},
    "tier0_only": {"kind": "fixed", "tier": 0},
    "always_tier1": {"kind": "fixed", "tier": 1},
    "always_tier2": {"kind": "fixed", "tier": 2},
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--domain", type=Path, required=True)
    parser.add_argument("--conversations", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="the params the bot serves with"
    )
    return parser.parse_args(argv)


def variants(
    served: dict[str, Any], names: Sequence[str], caches: Sequence[bool]
) -> dict[str, dict[str, Any]]:
    """``{"tiered+cache": params, ...}``: the served params with the policy and the cache switched."""
    out = {}
    for name in names:
        for cache in caches:
            params = copy.deepcopy(served)
            if POLICIES[name]:
                params["tiers"]["policy"] = {**POLICIES[name]}
            params.setdefault("cache", {})["enabled"] = cache
            out[f"{name}{'+cache' if cache else ''}"] = params
    return out


def main(argv: Sequence[str] | None = None) -> int:
    apply_offline_env()
    args = parse_args(argv)
    params = load_params(STAGE, args.params)
    from app.evaluation.conversations import ConversationFileError
    from pipelines.evaluate_bot import load_sets

    try:
        if not args.model.is_file():
            raise FileNotFoundError(f"no model at {args.model}")
        (conversations,) = load_sets([args.conversations], args.domain, args.index, params).values()
    except (ConversationFileError, FileNotFoundError) as exc:
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    names = [str(n) for n in params.get("policies", list(POLICIES))]
    if unknown := sorted(set(names) - set(POLICIES)):
        print(f"{STAGE}: error: unknown policies {unknown}; known: {sorted(POLICIES)}", file=sys.stderr)
        return 2
    served = load_params(None, args.params)
    table = run(conversations, variants(served, names, [False, True]), args, params)
    print(
        f"{STAGE}: "
        + "; ".join(
            f"{r['policy']} {r['task_completion']} / {r['cost_per_1000_conversations']}"
            for r in table["rows"]
        )
    )
    for row in (r for r in table["rows"] if r["policy"] == "tiered"):  # the served policy, tenant by tenant
        print(
            f"{STAGE}: {row['policy']} by tenant: "
            + "; ".join(
                f"{tenant} {t['task_completion']} / {t['cost_per_1000_conversations']}, tiers {t['tiers_used']}"
                for tenant, t in row["by_tenant"].items()
            )
        )
    return 0


def run(
    conversations: Any, policies: dict[str, dict[str, Any]], args: argparse.Namespace, params: dict[str, Any]
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from app.evaluation.run import EvaluationStack, llm_note, stack_settings, temporary_state
    from app.settings import get_settings
    from pipelines.evaluate_bot import answer_similarity

    llm, notes = llm_note(args.params)
    similarity = answer_similarity()
    rows = []
    with temporary_state() as state:
        files = Path(state) / "policies"
        files.mkdir()
        settings = stack_settings(get_settings(), args.model, args.index, args.params, Path(state) / "stack")
        with EvaluationStack(settings) as stack, tqdm(total=len(policies) * conversations.scored_turns,
                                                       desc=STAGE, unit="turn") as bar:  # fmt: skip
            stack.seed(conversations.customers)
            for name, variant in policies.items():
                path = files / f"{name}.yaml"
                path.write_text(yaml.safe_dump(variant, sort_keys=False))
                stack.serve_with(path)
                result = stack.run(conversations, similarity=similarity, progress=bar.update,
                                   concurrency=int(params.get("concurrency", 1)))  # fmt: skip
                stack.forget(conversations)
                figures = result.metrics
                rows.append({
                    "policy": name,
                    "task_completion": figures["task_completion"],
                    "correct_containment": figures["correct_containment"],
                    "handler_accuracy": figures["handler_accuracy"],
                    "false_idk_on_answerable": figures["false_idk_on_answerable"],
                    "cost_per_1000_conversations": figures["cost_per_1000_conversations"],
                    "tokens_per_conversation": figures["tokens_per_conversation"],
                    "llm_calls": figures["llm_calls"],
                    "tiers_used": result.tiers_used(),
                    "by_tenant": result.by_tenant(),
                    "p50_ms": result.latency_p50(),
                    **{f"answer_{k}": v for k, v in (figures["answer_similarity"] or {}).items()},
                })  # fmt: skip
    table = {"llm": llm, "notes": notes, "conversations": len(conversations.conversations), "rows": rows}
    out = args.out
    write_json(out / "policies.json", table)
    with (out / "policies.csv").open("w", newline="") as f:
        writer = csv.DictWriter(
            f, fieldnames=[k for k in rows[0] if k not in ("tiers_used", "by_tenant")], extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
    pareto(out / "pareto.png", rows, notes)
    with stage_run(STAGE, {**params, "llm": llm}):
        import mlflow

        # per policy, named as in policies.csv ("+" is no character of an MLflow name: tiered+cache -> tiered_with_cache)
        log_metrics(STAGE, {row["policy"].replace("+", "_with_"): row for row in rows})
        for name in ("policies.json", "policies.csv", "pareto.png"):
            mlflow.log_artifact(str(out / name))
    return table


def pareto(path: Path, rows: list[dict[str, Any]], notes: list[str]) -> None:
    """Cost per 1000 conversations (x) against task completion (y), one point per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        x, y = row["cost_per_1000_conversations"] or 0.0, row["task_completion"] or 0.0
        ax.scatter([x], [y], marker="o" if "+cache" in row["policy"] else "s")
        ax.annotate(row["policy"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xlabel("model cost per 1000 conversations")
    ax.set_ylabel("task completion (conversation test set)")
    ax.set_title("Tier policies on the served stack" + (f"\n{notes[0]}" if notes else ""), fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
