"""Stage validate_nlu: stop the pipeline on broken training data before anything is trained."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlu.rasa_runner import RasaError
from nlu.training import validate_data
from pipelines._common import load_params, stage_run, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
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
            print(f"validate_nlu: training data is invalid: {exc}", file=sys.stderr)
            return 1
        import mlflow

        mlflow.log_metrics({"warnings": report["warnings"], "seconds": report["seconds"]})
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
