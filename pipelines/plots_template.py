"""DVC stage ``plots_template``: the HTML template ``dvc plots show`` fills (``.dvc/config`` names it), with the
Vega, Vega-Lite and Vega-Embed scripts inlined from vl-convert-python's bundle, so the plots draw offline.

    python -m pipelines.plots_template --out reports/dvc_plots_template.html

DVC's default page loads those scripts from a CDN and is blank offline. The versions are the pinned
vl-convert-python's (requirements.lock); bump it there to update them (app/analytics/charts.py
``offline_template``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from app.analytics.charts import offline_template

STAGE = "plots_template"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{STAGE}", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the template file")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(offline_template(), encoding="utf8")
    print(f"{STAGE}: {args.out} ({args.out.stat().st_size // 1024} KiB, no external scripts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
