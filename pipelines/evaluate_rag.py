"""DVC stage ``evaluate_rag``: score retrievers, "I don't know" and answers (ragas) on the gold questions.

    python -m pipelines.evaluate_rag --index knowledge/index --gold knowledge/eval/gold.yml \\
        --out knowledge/results

Writes into ``--out`` and logs to MLflow:

- ``metrics.json``: the served retriever's figures at the top level (hit@1, hit@k, MRR, nDCG@10,
  recall@k, IDK precision/recall, latency), ``retrievers`` (the same per retriever: dense, bm25,
  hybrid), ``answerability`` (AUC) and ``ragas`` (offline metrics; judged ones when a judge is set);
- ``per_question.csv``: one row per question (ranking, confidence, answered, ragas scores);
- ``hit_at_k.csv`` / ``.png``: hit rate for k = 1..10 (DVC plot);
- ``idk_curve.csv`` / ``.png``: "I don't know" precision and recall for every cut-off (DVC plot);
- ``retrievers.csv`` / ``.png``: the metrics per retriever, side by side.

``top_k``, the retrievers and ``ragas`` come from the ``evaluate_rag`` params; the cut-off, the chunks per
answer and the served retriever from ``serve``, so "I don't know" is measured as the bot serves it. The
answers scored are the knowledge base's extractive ones (``serve.knowledge_answerer`` is not read: the
LLM answers are the tiers' of ``app.llm``). ragas' LLM-judged metrics (faithfulness, answer relevancy) run only when
``SWITCHBOARD_JUDGE_BASE_URL`` is set (see :mod:`knowledge.ragas_eval`). A missing or malformed gold
file, a gold doc id the index does not hold, or a missing index prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.offline import apply_offline_env
from knowledge.calibration import describe_cut_offs
from knowledge.evaluation import EvaluationResult, evaluate
from knowledge.gold import check_gold_against_index, load_gold
from knowledge.index import read_manifest
from knowledge.retrieval import KnowledgeBase
from knowledge.retrievers import RETRIEVERS
from pipelines._common import (
    base_params,
    load_params,
    load_section,
    log_metrics,
    serve_params,
    stage_run,
    write_json,
)

STAGE = "evaluate_rag"
MAX_K = 10


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments: the index, the gold questions and the results folder."""
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True, help="index folder built by build_index")
    parser.add_argument("--gold", type=Path, required=True, help="gold questions (YAML)")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    return parser.parse_args(argv)


def _cut_offs(metrics: dict) -> str:
    """The served "I don't know" lines: the overall one, and the tenants' own lower ones."""
    return describe_cut_offs(metrics["cut_off"], metrics.get("tenant_cut_offs"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation; return the process exit code (0 ok, 2 bad input)."""
    apply_offline_env()
    args = parse_args(argv)
    params = load_params(STAGE)
    top_k = int(params.get("top_k", 5))
    retrievers = [str(name) for name in params.get("retrievers", RETRIEVERS)]
    answer_top_k = serve_params().knowledge_top_k
    served = "hybrid"  # what the bot retrieves with (KnowledgeBase.lookup)
    try:
        questions = load_gold(args.gold, default_tenant=base_params().tenant)
        check_gold_against_index(questions, read_manifest(args.index))
        if served not in retrievers:
            raise ValueError(f"the served retriever {served!r} must be among evaluate_rag.retrievers")
        kb = KnowledgeBase.load(args.index)
        answer, llm_note = served_replies(kb, answer_top_k)
    except (ValueError, FileNotFoundError) as exc:  # GoldSetError, or an index built with another model
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    run_params = {
        "top_k": top_k,
        "retrievers": ",".join(retrievers),
        "cut_off": kb.cut_off,
        "knowledge_top_k": answer_top_k,
        "knowledge_retriever": served,
        "kb_version": kb.version,
        "questions": len(questions),
        "fusion": kb.fusion[0],
        "dense_weight": kb.fusion[1],
        "llm": llm_note,
    }
    with stage_run(STAGE, run_params):
        result = evaluate(
            kb,
            questions,
            top_k=top_k,
            answer=answer,
            answer_top_k=answer_top_k,
            max_k=MAX_K,
            retriever=served,
            retrievers=retrievers,
            keep_answers=True,
        )
        result.metrics["llm"] = llm_note
        if params.get("ragas", True):
            _add_ragas(result, kb, questions)
        for row in result.rows:
            row.pop("_answer", None)
        paths = write_results(result, args.out)
        _log_to_mlflow(result, paths)
    kb.close()
    print(_summary(result, top_k))
    return 0


def served_replies(kb: KnowledgeBase, top_k: int) -> tuple[Any, str]:
    """The bot's own knowledge path as an answer function (:mod:`app.orchestration.answering`: one lookup,
    the router, the tiered answerer of params.yaml's ``tiers``; no cache, full degradation level), and how
    its LLM tiers are served (``none`` offline: tier 0 answers)."""
    from app.llm.client import CallContext
    from app.llm.config import TiersConfig
    from app.llm.policy import build_policy
    from app.llm.tiers import TieredAnswerer
    from app.orchestration.answering import answer_question, route_question
    from app.orchestration.handlers import KNOWLEDGE
    from app.orchestration.router import RouterConfig
    from knowledge.evaluation import Reply

    tiers = load_section("tiers", TiersConfig)
    policy = build_policy(tiers.policy, available=[0, *tiers.endpoints])
    answerer = TieredAnswerer.from_config(tiers, None, policy)
    router = load_section("router", RouterConfig)

    def answer(question: Any) -> Reply:
        decision, found = route_question(
            kb, question.question, question.tenant, router, policy, intent="", confidence=1.0, top_k=top_k
        )
        context = CallContext(question.tenant, "evaluate_rag", f"{question.tenant}:evaluate_rag", question.id)
        reply = answer_question(answerer, kb, found, decision, context)
        return Reply(
            reply.handler == KNOWLEDGE, found.confidence, reply.text or "", [h.text for h in found.hits]
        )

    return answer, "configured" if tiers.endpoints else "none"


def _add_ragas(result: EvaluationResult, kb: KnowledgeBase, questions: Sequence[Any]) -> None:
    """ragas metrics of the served answers of the answerable questions, into the metrics and the rows."""
    from knowledge.ragas_eval import RagSample, judge_from_env, score, supporting_passages

    doc_chunks: dict[str, list[str]] = {}
    for chunk in kb.chunks:
        doc_chunks.setdefault(chunk.doc_id, []).append(chunk.text)
    by_id = {question.id: question for question in questions}
    samples = []
    for row in result.rows:
        question = by_id[row["id"]]
        if not question.answerable:
            continue
        reply = row["_answer"]
        response = reply.text.split("\n\nSource")[0] if reply.answered else reply.text
        samples.append(
            RagSample(
                id=question.id,
                question=question.question,
                response=response,
                reference=question.answer,
                retrieved_contexts=reply.contexts,  # the passages the answer was built from
                reference_contexts=supporting_passages(
                    question.answer, doc_chunks, question.doc_ids, kb.embed_model
                ),
                answered=reply.answered,
            )
        )
    report = score(samples, kb.embed_model, judge=judge_from_env(), show_progress=sys.stderr.isatty())
    result.metrics["ragas"] = {**report.means, "judge": report.judge, "samples": len(samples)}
    for row in result.rows:
        for name, value in report.per_sample.get(row["id"], {}).items():
            row[f"ragas_{name}"] = None if value is None else round(value, 4)


def write_results(result: EvaluationResult, out_dir: Path) -> list[Path]:
    """Write metrics, rows, the hit@k and IDK curves, the per-retriever table, and their plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = _retriever_table(result.metrics)
    paths = [
        write_json(out_dir / "metrics.json", result.metrics),
        _write_csv(out_dir / "per_question.csv", result.rows),
        _write_csv(out_dir / "hit_at_k.csv", result.hit_curve),
        _write_csv(out_dir / "idk_curve.csv", [p for p in result.idk_curve if p["precision"] is not None]),
        _write_csv(out_dir / "retrievers.csv", table),
        _plot_hit_curve(out_dir / "hit_at_k.png", result.hit_curve),
        _plot_idk_curve(out_dir / "idk_curve.png", result.idk_curve, result.metrics),
        _plot_retrievers(out_dir / "retrievers.png", table),
    ]
    return paths


def _retriever_table(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"retriever": name, "metric": metric, "value": value}
        for name, values in metrics.get("retrievers", {}).items()
        for metric, value in values.items()
    ]


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    fields: list[str] = []
    for row in rows:
        fields.extend(key for key in row if key not in fields)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_hit_curve(path: Path, curve: Sequence[dict[str, float]]) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.5), dpi=100)
    axes.plot([point["k"] for point in curve], [point["hit_rate"] or 0.0 for point in curve], marker="o")
    axes.set(xlabel="k (documents retrieved)", ylabel="hit@k", ylim=(0, 1.02), title="Retrieval hit@k")
    axes.set_xticks([point["k"] for point in curve])
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _plot_idk_curve(path: Path, curve: Sequence[dict[str, Any]], metrics: dict[str, Any]) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.8), dpi=100)
    points = [p for p in curve if p["precision"] is not None]
    axes.plot(
        [p["recall"] for p in points], [p["precision"] for p in points], marker=".", label="all cut-offs"
    )
    if metrics.get("idk_precision") is not None:
        axes.plot(
            [metrics["idk_recall"]],
            [metrics["idk_precision"]],
            "o",
            color="crimson",
            markersize=9,
            label=f"served cut-off {_cut_offs(metrics)} (the index's)",
        )
    axes.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    axes.axvline(0.8, color="grey", linestyle=":", linewidth=1, label="goal (0.9 @ 0.8)")
    auc = (metrics.get("answerability") or {}).get("auc")
    axes.set(
        xlabel="IDK recall (unanswerable questions refused)",
        ylabel="IDK precision",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
        title=f'"I don\'t know" (answerability AUC {auc})',
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _plot_retrievers(path: Path, table: Sequence[dict[str, Any]]) -> Path:
    plt = _pyplot()
    retrievers = list(dict.fromkeys(row["retriever"] for row in table))
    metrics = list(dict.fromkeys(row["metric"] for row in table))
    value = {(row["retriever"], row["metric"]): row["value"] or 0.0 for row in table}
    figure, axes = plt.subplots(figsize=(6.5, 3.8), dpi=100)
    width = 0.8 / max(1, len(retrievers))
    for i, name in enumerate(retrievers):
        xs = [j + i * width for j in range(len(metrics))]
        axes.bar(xs, [value[(name, metric)] for metric in metrics], width=width, label=name)
    axes.set_xticks([j + width * (len(retrievers) - 1) / 2 for j in range(len(metrics))], metrics, fontsize=8)
    axes.set(ylim=(0, 1.05), ylabel="score", title="Retrieval on the gold questions, per retriever")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _log_to_mlflow(result: EvaluationResult, paths: Sequence[Path]) -> None:
    import mlflow

    log_metrics(STAGE, result.metrics)
    for k_point in result.hit_curve:
        if k_point["hit_rate"] is not None:
            log_metrics(STAGE, {"hit_rate_curve": k_point["hit_rate"]}, step=int(k_point["k"]))
    for path in paths:
        mlflow.log_artifact(str(path))


def _summary(result: EvaluationResult, top_k: int) -> str:
    metrics = result.metrics

    def show(values: dict[str, Any], key: str) -> str:
        value = values.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"{STAGE}: {metrics['questions']} questions, served {metrics['retriever']}: hit@1 {show(metrics, 'hit_at_1')}, "
        f"hit@{top_k} {show(metrics, f'hit_at_{top_k}')}, MRR {show(metrics, 'mrr')}, "
        f"nDCG@10 {show(metrics, 'ndcg_at_10')}, recall@{top_k} {show(metrics, f'recall_at_{top_k}')}, "
        f"IDK precision {show(metrics, 'idk_precision')} / recall {show(metrics, 'idk_recall')} "
        f"at {_cut_offs(metrics)}, p50 retrieval {show(metrics, 'retrieval_ms_p50')} ms, "
        f"answer {show(metrics, 'latency_ms_p50')} ms"
    ]
    for name, values in metrics.get("retrievers", {}).items():
        lines.append(
            f"{STAGE}:   {name:<7} hit@1 {show(values, 'hit_at_1')}  hit@{top_k} {show(values, f'hit_at_{top_k}')}"
            f"  MRR {show(values, 'mrr')}  nDCG@10 {show(values, 'ndcg_at_10')}"
            f"  recall@{top_k} {show(values, f'recall_at_{top_k}')}"
        )
    if "ragas" in metrics:
        ragas = metrics["ragas"]
        shown = ", ".join(f"{k} {show(ragas, k)}" for k in ragas if k not in ("judge", "samples"))
        lines.append(f"{STAGE}: ragas ({ragas['judge']} judge): {shown}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
