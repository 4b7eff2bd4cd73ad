"""Stage validate_nlu: stop the pipeline on broken training data before anything is trained.

Our checks (:mod:`nlu.data_checks`: YAML syntax, entities the domain does not declare, intents with no
examples) run first, then ``rasa data validate``. A failure prints one line naming the file (and line)
and exits non-zero, so DVC stops before split/train.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from nlu.rasa_runner import RasaError
from nlu.training import validate_data
from pipelines._common import load_params, log_metrics, stage_run, write_json

_RASA_LOCATION = re.compile(r'in "(?P<file>[^"]+)", line (?P<line>\d+)')


def one_line(error: str) -> str:
    """A failure as one line: the first problem, where it is, and how many more there are."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    if not lines[0].startswith("`rasa"):  # our checks: one problem per line, already file:line
        more = len(lines) - 1
        suffix = f" (and {more} more: python -m nlu.data_checks DOMAIN DATA lists them)" if more else ""
        return lines[0] + suffix
    # Rasa's own message: find the file and line it names, and the sentence that says what is wrong
    text = " ".join(lines)
    location = _RASA_LOCATION.search(text)
    reason = next(
        (line for line in reversed(lines) if "error" in line.lower() or "expected" in line.lower()), lines[-1]
    )
    reason = re.sub(r"\x1b\[[0-9;]*m", "", reason)
    return f"{location['file']}:{location['line']}: {reason}" if location else reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="validation report (JSON)")
    args = parser.parse_args(argv)
    params = load_params("validate_nlu")
    with stage_run("validate_nlu", params):
        try:
            report = validate_data(args.domain, args.data, args.config, bool(params.get("fail_on_warnings")))
        except RasaError as exc:
            import mlflow

            mlflow.set_tag("error", one_line(str(exc)))
            print(f"validate_nlu: invalid training data: {one_line(str(exc))}", file=sys.stderr)
            return 1
        import mlflow

        log_metrics("validate_nlu", {"warnings": report["warnings"], "seconds": report["seconds"]})
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
