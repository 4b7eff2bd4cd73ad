"""DVC stage ``notebooks``: every notebook executed on the pipeline's outputs and rendered to HTML with them.

    python -m pipelines.notebooks --notebooks notebooks/01_pipeline_results.ipynb ... --out notebooks/html \\
        --nlu-results nlu/results --rag-results knowledge/results --bot-results nlu/results/bot \\
        --policy-results nlu/results/policies

Each notebook runs top to bottom in its folder with nbclient, on this interpreter's kernel with the project
kernel's variables (:func:`app.lab.execute`), the parameters ``ROOT`` (the project root) and ``RESULTS`` (the
result folders given here) injected after its ``parameters`` cell. Written into ``--out``: ``<name>.html``
(nbconvert, outputs and charts inline: opens offline) and ``<name>.ipynb`` (the executed notebook, to open in
JupyterLab with its outputs), and ``timings.json`` (seconds per notebook).

A cell that fails: one line on stderr naming the notebook and the error, exit 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from app.offline import apply_offline_env
from pipelines._common import write_json

STAGE = "notebooks"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, nargs="+", required=True, help="the notebooks to execute")
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for the executed and rendered notebooks"
    )
    parser.add_argument("--nlu-results", required=True, help="evaluate_nlu's results folder")
    parser.add_argument("--rag-results", required=True, help="evaluate_rag's results folder")
    parser.add_argument("--bot-results", required=True, help="evaluate_bot's results folder")
    parser.add_argument("--policy-results", required=True, help="compare_policies' results folder")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    apply_offline_env()
    args = parse_args(argv)
    import nbformat
    from nbclient.exceptions import CellExecutionError
    from tqdm.auto import tqdm

    from app.lab import execute, to_html

    parameters = {
        "ROOT": str(Path.cwd().resolve()),
        "RESULTS": {
            "nlu_results": args.nlu_results,
            "rag_results": args.rag_results,
            "bot_results": args.bot_results,
            "policy_results": args.policy_results,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with tqdm(args.notebooks, desc=STAGE, unit="notebook") as bar:
        for path in bar:
            started = time.perf_counter()
            try:
                executed = execute(path, parameters, timeout=args.timeout)
            except CellExecutionError as exc:
                bar.close()  # the error is the last line
                error = (
                    f"{exc.ename}: {exc.evalue}" if getattr(exc, "ename", None) else str(exc).splitlines()[0]
                )
                print(f"{STAGE}: error: {path}: {error}", file=sys.stderr)
                return 1
            timings[path.stem] = round(time.perf_counter() - started, 2)
            nbformat.write(executed, args.out / path.name)
            (args.out / f"{path.stem}.html").write_text(to_html(executed), encoding="utf-8")
    write_json(
        args.out / "timings.json", {"seconds": timings, "total_seconds": round(sum(timings.values()), 2)}
    )
    print(
        f"{STAGE}: {len(timings)} notebooks executed and rendered into {args.out} in {sum(timings.values()):.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
