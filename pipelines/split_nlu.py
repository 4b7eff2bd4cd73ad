"""Stage split_nlu: hold out a stratified test share for evaluate_nlu, and a validation share of the
training part for select_threshold_nlu (the out-of-scope threshold is never chosen on test data)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlu.rasa_runner import RasaError
from nlu.training import split_data
from pipelines._common import base_params, load_params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nlu", type=Path, required=True, help="folder of NLU training files")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params("split_nlu")
    try:
        paths = split_data(
            [args.nlu],
            args.out,
            float(params["test_fraction"]),
            base_params().seed,
            float(params.get("validation_fraction", 0.0)),
        )
    except RasaError as exc:
        print(f"split_nlu: {exc}", file=sys.stderr)
        return 1
    print("split_nlu: " + ", ".join(f"{k} {v}" for k, v in paths.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
