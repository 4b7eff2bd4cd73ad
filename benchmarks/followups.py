"""Which passage a follow-up is quoted: the dev follow-ups (``knowledge/eval/followups.yml``) with the topic's
vector weighted 0 to 2 in ``Lookup.focused_on``, against the follow-up read alone and the served weight.

The served knowledge action reads a follow-up ("and what does it cost to send it there?") with the conversation's
topic: the topic and the follow-up together (``nlu.context.resolved_question``) find the articles, and the passage
is chosen by the sum of that lookup's vector, weighted ``FOLLOWUP_TOPIC_WEIGHT``, and the follow-up's own
(``knowledge.retrieval.Lookup.focused_on``). Each dev follow-up is looked up that way on the served index and
quoted by the served extractive answerer; it is right when the quoted section (the answer's first source) is the
labelled one. Rows: the follow-up read alone (no context, the baseline), read with its topic and quoted by that
lookup's vector alone (no focus), and each weight. Not measured here: the gates before (whether the follow-up's
words occur in what the topic found, the router), which decide whether a follow-up is read with its topic at all;
the served bot's figures come from ``evaluate_bot``. The dev follow-ups are ours, written for this and kept apart
from the gold questions and the conversation test sets, so the weight is never chosen on a test set.

    python benchmarks/followups.py                 # the served index (dvc repro build_index); about 6 s
    python benchmarks/followups.py --index DIR --followups FILE --json OUT
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.offline import apply_offline_env  # noqa: E402
from knowledge.gold import GoldQuestion, GoldSetError, check_gold_against_index, load_gold  # noqa: E402
from knowledge.retrieval import FOLLOWUP_TOPIC_WEIGHT, KnowledgeBase, Lookup  # noqa: E402
from nlu.context import resolved_question  # noqa: E402
from pipelines._common import serve_params, write_json  # noqa: E402

apply_offline_env()

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=ROOT / "knowledge" / "index")
    parser.add_argument("--followups", type=Path, default=ROOT / "knowledge" / "eval" / "followups.yml")
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="chunks retrieved (default: params.yaml serve.knowledge_top_k)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "followups.json")
    return parser.parse_args(argv)


def quoted(kb: KnowledgeBase, found: Lookup) -> tuple[str, str]:
    """The (doc id, section) the extractive answer of ``found`` quotes (no "I don't know" line: the passage
    chosen is what is measured)."""
    answer = kb.extract(found, cut_off=0.0)
    first = answer.sources[0] if answer.sources else {}
    return str(first.get("doc_id", "")), str(first.get("section", ""))


def _labelled(question: GoldQuestion, doc_id: str, section: str) -> bool:
    return doc_id in question.doc_ids and section in question.sections


def measure(kb: KnowledgeBase, questions: list[GoldQuestion], top_k: int) -> dict[str, dict]:
    """Per row, the share of follow-ups whose quoted section, and article, is the labelled one."""
    names = ["alone (no topic; baseline)", "with the topic, no focus"] + [
        f"with the topic, topic weight {w:g}" + (" (served)" if w == FOLLOWUP_TOPIC_WEIGHT else "")
        for w in WEIGHTS
    ]
    right = {name: [0, 0] for name in names}  # [section, article]
    among = 0  # the labelled section among the chunks the topic reading retrieved: the ceiling
    for question in questions:
        own = kb.lookup(question.question, question.tenant, top_k)
        read = kb.lookup(resolved_question(question.after, question.question), question.tenant, top_k)
        among += any(_labelled(question, hit.doc_id, hit.section) for hit in read.hits)
        variants = [own, read] + [read.focused_on(own, w) for w in WEIGHTS]
        for name, found in zip(names, variants, strict=True):
            doc, section = quoted(kb, found)
            right[name][0] += _labelled(question, doc, section)
            right[name][1] += doc in question.doc_ids
    n = len(questions)
    rows = {name: {"section": round(s / n, 4), "article": round(a / n, 4)} for name, (s, a) in right.items()}
    return {"followups": n, "labelled_section_retrieved": round(among / n, 4), "rows": rows}


def plot(result: dict, path: Path) -> Path:
    """Bars: the share quoting the right section, per row (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh(list(rows), [row["section"] for row in rows.values()], color="#4c72b0")
    ax.axvline(
        result["labelled_section_retrieved"], color="grey", linestyle=":", label="labelled section retrieved"
    )
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of dev follow-ups quoting the labelled section")
    ax.set_title(f"Follow-up passage choice ({result['followups']} dev follow-ups)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        questions = [q for q in load_gold(args.followups) if q.after]
        if not questions:
            raise GoldSetError(f"{args.followups}: no follow-up (a question with 'after:')")
        if any(not q.sections for q in questions):
            raise GoldSetError(f"{args.followups}: every follow-up needs the section that answers it")
        kb = KnowledgeBase.load(args.index)
        check_gold_against_index(questions, kb.manifest)
    except (GoldSetError, FileNotFoundError, ValueError) as exc:
        print(f"followups: {exc}", file=sys.stderr)
        return 2
    result = measure(kb, questions, args.top_k or serve_params().knowledge_top_k)
    write_json(args.json, result)
    png = plot(result, args.json.with_suffix(".png"))
    print(
        f"Follow-up passage choice: {result['followups']} dev follow-ups ({args.followups.name}), index {args.index}; "
        f"the labelled section is among the retrieved chunks for {result['labelled_section_retrieved']:.3f}"
    )
    print("| read as | right section | right article |")
    print("| --- | ---: | ---: |")
    for name, row in result["rows"].items():
        print(f"| {name} | {row['section']:.3f} | {row['article']:.3f} |")
    print(f"-> {args.json}, {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
