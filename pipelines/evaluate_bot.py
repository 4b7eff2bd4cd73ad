"""DVC stage ``evaluate_bot``: the bot users talk to, evaluated by playing conversations through it.

    python -m pipelines.evaluate_bot --model nlu/models/switchboard.tar.gz --index knowledge/index \\
        --domain nlu/domain.yml --conversations nlu/conversations/frozen.yml nlu/conversations/added.yml \\
        --out nlu/results/bot

Starts the served stack (:mod:`app.evaluation.run`) on the model under evaluation, the current index and
params.yaml's tiers, plays the conversation files (``evaluate_bot`` params pick a slice: ``tags``, ``limit``)
through the gateway, reads back the turn records and writes into ``--out``:

- ``metrics.json``: the figures of :mod:`app.evaluation.metrics` per conversation file and for all of them,
  and how the LLM tiers were served (``llm``: none, stand-in or configured, with the note the figures carry);
- ``turns.csv``: one row per scored turn (the DVC confusion plot: expected against actual handler);
- ``records.json``: the turn records of every user turn and the LLM calls they name (what the conversation
  analytics notebook reads, as the Analytics page reads the live stores);
- ``confusion.png``: the same as an image that opens offline; ``failing.md``: every conversation with a failed
  turn, its transcript and what failed;
- ``gaps.md``: the knowledge gaps (:mod:`app.evaluation.gaps`): every answerable turn that failed, replayed
  against the index (what was retrieved, with what confidence, where the expected article ranks, which article
  states the missing facts), grouped by cause, the facts no article states first;
- an MLflow run (stage ``evaluate_bot``) with the figures and these files.

A malformed conversation file, an unknown intent or source, or a missing model/index: one line on stderr
naming the file (conversation and turn), exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.offline import apply_offline_env
from pipelines._common import load_params, log_metrics, serve_params, stage_run, write_json

STAGE = "evaluate_bot"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the Rasa model tarball to serve")
    parser.add_argument("--index", type=Path, required=True, help="the knowledge index folder to serve")
    parser.add_argument("--domain", type=Path, required=True, help="the Rasa domain (its intents)")
    parser.add_argument("--conversations", type=Path, nargs="+", required=True, help="conversation files")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="the params the bot serves with"
    )
    return parser.parse_args(argv)


def load_sets(paths: Sequence[Path], domain: Path, index: Path, params: dict[str, Any]) -> dict[str, Any]:
    """``{file stem: ConversationSet}`` of the selected slice of each file (ConversationFileError, OSError)."""
    from app.evaluation.conversations import check_sources, domain_intents, load
    from knowledge.index import read_chunks

    intents = domain_intents(domain)
    loaded = {
        path: load(path, intents=intents) for path in paths
    }  # the files first: their errors name a turn
    doc_ids = {chunk.doc_id for chunk in read_chunks(index)}
    sets = {}
    for path, data in loaded.items():
        check_sources(path, data, doc_ids)
        sets[path.stem] = data.select(
            tags=params.get("tags") or (),
            ids=params.get("ids") or (),
            limit=int(params.get("limit") or 0) or None,
        )
    return sets


def main(argv: Sequence[str] | None = None) -> int:
    apply_offline_env()
    args = parse_args(argv)
    params = load_params(STAGE, args.params)
    from app.evaluation.conversations import ConversationFileError

    try:
        if not args.model.is_file():
            raise FileNotFoundError(f"no model at {args.model}")
        sets = load_sets(args.conversations, args.domain, args.index, params)
    except (ConversationFileError, FileNotFoundError) as exc:
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    metrics = run(sets, args, params)
    print(f"{STAGE}: {summary(metrics)}")
    return 0


def run(sets: dict[str, Any], args: argparse.Namespace, params: dict[str, Any]) -> dict[str, Any]:
    """Play every selected conversation in one stack run, then score each file and all together."""
    from tqdm.auto import tqdm

    from app.evaluation import report
    from app.evaluation.conversations import ConversationSet
    from app.evaluation.metrics import compute
    from app.evaluation.run import evaluate, llm_note, stack_settings, temporary_state
    from app.settings import get_settings

    everything = ConversationSet(
        version=1,
        customers=tuple(c for s in sets.values() for c in s.customers),
        conversations=tuple(c for s in sets.values() for c in s.conversations),
    )
    llm, notes = llm_note(args.params)
    similarity = answer_similarity()
    with temporary_state() as state, tqdm(total=everything.scored_turns, desc=STAGE, unit="turn") as bar:
        settings = stack_settings(get_settings(), args.model, args.index, args.params, Path(state))
        result = evaluate(
            everything,
            settings,
            concurrency=int(params.get("concurrency", 1)),
            similarity=similarity,
            progress=bar.update,
        )
    metrics: dict[str, Any] = {"llm": llm, "notes": notes, "all": result.metrics}
    for name, data in sets.items():
        ids = {c.id for c in data.conversations}
        metrics[name] = compute(
            data.conversations, [r for r in result.results if r.conversation in ids], result.calls, similarity
        )
    out = args.out
    report.write_turns(out / "turns.csv", result.results)
    report.write_records(out / "records.json", result.records, result.calls)
    title = f"Expected vs actual handler ({everything.scored_turns} turns)" + (
        f"; {notes[0]}" if notes else ""
    )
    report.plot_confusion(out / "confusion.png", result.metrics["confusion"], title)
    header = f"# Failing conversations ({STAGE})" + "".join(f"\n\n> {n}" for n in notes)
    (out / "failing.md").write_text(
        report.failing_conversations(everything.conversations, result.played, result.results, header)
    )
    write_gaps(out / "gaps.md", result.results, everything, args)
    write_json(out / "metrics.json", metrics)
    with stage_run(STAGE, {**params, "model": str(args.model), "llm": llm}) as _run:
        import mlflow

        log_metrics(STAGE, metrics, skip=("confusion",))
        for name in ("metrics.json", "turns.csv", "records.json", "confusion.png", "failing.md", "gaps.md"):
            mlflow.log_artifact(str(out / name))
    return metrics


def write_gaps(path: Path, results: Sequence[Any], played: Any, args: argparse.Namespace) -> None:
    """``gaps.md``: the failed answerable turns replayed against the served index (:mod:`app.evaluation.gaps`)."""
    from app.evaluation.gaps import find_gaps, gaps_markdown
    from knowledge.retrieval import KnowledgeBase

    kb = KnowledgeBase.load(args.index)
    try:
        tenants = {conversation.id: conversation.tenant for conversation in played.conversations}
        gaps = find_gaps(results, tenants, kb, top_k=serve_params(args.params).knowledge_top_k)
    finally:
        kb.close()
    path.write_text(gaps_markdown(gaps, f"# Knowledge gaps ({STAGE})"))


def answer_similarity() -> Any:
    """ragas' offline answer metrics (string and semantic similarity, ROUGE-L) with the local MiniLM."""
    from knowledge.embeddings import local_embed_model
    from knowledge.ragas_eval import RagSample, score

    embed = local_embed_model()

    def similarity(pairs: list[tuple[str, str, str]]) -> dict[str, float | None]:
        samples = [RagSample(i, "", answer, reference, [], []) for i, answer, reference in pairs]
        means = score(samples, embed).means
        return {k: means[k] for k in ("string_similarity", "semantic_similarity", "rouge_l")}

    return similarity


def summary(metrics: dict[str, Any]) -> str:
    figures = metrics["all"]
    return (
        f"{figures['conversations']} conversations, {figures['turns']} turns: task completion "
        f"{figures['task_completion']}, correct containment {figures['correct_containment']}, handler accuracy "
        f"{figures['handler_accuracy']}, cost/1000 conv {figures['cost_per_1000_conversations']}"
        + (f" ({metrics['notes'][0]})" if metrics["notes"] else "")
    )


if __name__ == "__main__":
    sys.exit(main())
