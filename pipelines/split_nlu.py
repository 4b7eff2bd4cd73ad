"""Stage split_nlu: hold out a stratified share of the NLU examples for evaluate_nlu."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nlu.rasa_runner import RasaError
from nlu.training import split_data
from pipelines._common import load_params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nlu", type=Path, required=True, help="folder of NLU training files")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params("split_nlu")
    try:
        split_data(args.nlu, args.out, float(params["test_fraction"]), int(load_params("base")["seed"]))
    except RasaError as exc:
        print(f"split_nlu: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
