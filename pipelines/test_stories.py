"""DVC stage ``test_stories``: the conversation test set as Rasa test stories, run by ``rasa test core``.

    python -m pipelines.test_stories --model nlu/models/switchboard.tar.gz --domain nlu/domain.yml \\
        --conversations nlu/conversations/frozen.yml nlu/conversations/added.yml \\
        --stories nlu/build/test_stories.yml --out nlu/results/stories --metrics nlu/results/stories.json

Writes the stories (:mod:`app.evaluation.stories`: every user turn with its expected intent and the actions a
correct bot runs) and runs ``rasa test core`` on them with the trained model, in the Rasa environment. Rasa
feeds each story's intents to the model's dialogue policies and compares the actions they predict with the
story's; the NLU is not in the loop (evaluate_nlu and evaluate_bot measure it). Into ``--out`` go Rasa's
report (``story_report.json``), ``failed_test_stories.yml`` (each wrong action marked ``# predicted:``) and
the confusion matrix; ``--metrics`` gets stories passed of total, Rasa's action accuracy and F1 (weighted, as
Rasa reports it; ``action_listen`` counts as an action), and how many conversations and turns became stories.
The figures go to MLflow (stage ``test_stories``).

A malformed conversation file, an unknown intent, a missing model or domain: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines._common import log_metrics, stage_run, write_json

STAGE = "test_stories"
REPORT = "story_report.json"
ARTIFACTS = (REPORT, "failed_test_stories.yml", "story_confusion_matrix.png")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the trained Rasa model tarball")
    parser.add_argument("--domain", type=Path, required=True, help="the Rasa domain (its intents)")
    parser.add_argument("--conversations", type=Path, nargs="+", required=True, help="conversation files")
    parser.add_argument("--stories", type=Path, required=True, help="the test stories file to write")
    parser.add_argument("--out", type=Path, required=True, help="folder for Rasa's report")
    parser.add_argument("--metrics", type=Path, required=True, help="the figures (JSON)")
    return parser.parse_args(argv)


def rasa_figures(report_file: Path) -> dict[str, Any]:
    """Stories passed of total and the action figures of Rasa's ``story_report.json``."""
    report = json.loads(report_file.read_text())
    stories, weighted = report["conversation_accuracy"], report["weighted avg"]
    return {
        "stories_passed": stories["correct"],
        "stories_tested": stories["total"],
        "story_accuracy": stories["accuracy"],
        "actions": weighted["support"],
        "action_accuracy": report["accuracy"],
        "action_f1": weighted["f1-score"],
        "action_precision": weighted["precision"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from app.evaluation.conversations import ConversationFileError, domain_intents, load
    from app.evaluation.stories import convert, write

    try:
        if not args.model.is_file():
            raise FileNotFoundError(f"no model at {args.model}")
        intents = domain_intents(args.domain)
        conversion = convert([load(path, intents=intents) for path in args.conversations])
        if not conversion.stories:
            raise ConversationFileError(
                f"no conversation of {', '.join(map(str, args.conversations))} can be a story"
            )
    except (ConversationFileError, OSError) as exc:
        print(f"{STAGE}: error: {exc}", file=sys.stderr)
        return 2
    write(args.stories, conversion, args.conversations)

    from nlu.rasa_runner import RasaError, run_rasa

    started = time.perf_counter()
    try:
        run_rasa(
            [
                "test",
                "core",
                "--stories",
                str(args.stories),
                "--model",
                str(args.model),
                "--out",
                str(args.out),
            ],
            quiet=True,
        )
    except RasaError as exc:
        print(f"{STAGE}: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    metrics = {**conversion.summary(), **rasa_figures(args.out / REPORT)}
    write_json(args.metrics, metrics)
    with stage_run(STAGE, {"model": str(args.model), "conversations": [str(p) for p in args.conversations]}):
        import mlflow

        log_metrics(STAGE, {**metrics, "rasa_seconds": round(seconds, 2)})
        mlflow.log_artifact(str(args.stories))
        mlflow.log_artifact(str(args.metrics))
        for name in ARTIFACTS:
            if (args.out / name).exists():
                mlflow.log_artifact(str(args.out / name), "rasa")
    print(
        f"{STAGE}: {metrics['stories_passed']}/{metrics['stories_tested']} stories passed, action accuracy "
        f"{metrics['action_accuracy']:.3f}, F1 {metrics['action_f1']:.3f} ({metrics['story_turns']} of "
        f"{metrics['turns']} turns of {metrics['conversations']} conversations in stories; rasa test core "
        f"{seconds:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
