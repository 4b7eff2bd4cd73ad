"""A rendered notebook as a person sees it: headless Chromium, offline (every host name unresolvable, no
background networking), takes a screenshot of the stage's HTML of the pipeline results notebook, and the charts
are in it: matplotlib's first colour fills bars of the screenshot, and not of the same notebook rendered without
its outputs (the baseline, in the same run).

Chromium comes with Debian's ``chromium`` package (``.ci/run`` installs it): these tests skip without it and fail
under ``CI=true``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pytest

from app.lab import to_html
from tests.conftest import required_command

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = "01_pipeline_results"
CHART_BLUE = np.array([31, 119, 180])  # matplotlib's C0 (#1f77b4), the bars of the notebook's charts


@pytest.fixture(scope="module")
def chromium() -> str:
    return required_command("chromium", "chromium-browser", "google-chrome", package="chromium")


def screenshot(chromium: str, page: Path, out: Path, height: int = 7000) -> np.ndarray:
    """``page`` opened from the file system by headless Chromium, as RGB pixels."""
    import matplotlib.image

    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={out.parent / 'chromium-profile'}",
         f"--window-size=1280,{height}", f"--screenshot={out}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and out.is_file(), done.stderr[-2000:]
    return (matplotlib.image.imread(out)[..., :3] * 255).round().astype(int)


def chart_pixels(pixels: np.ndarray) -> int:
    return int((np.abs(pixels - CHART_BLUE).max(axis=-1) <= 6).sum())


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_rendered_notebook_shows_its_charts_in_a_browser(chromium, pipeline_run, tmp_path):
    page = pipeline_run.root / "notebooks" / "html" / f"{NOTEBOOK}.html"
    if not page.is_file() and pipeline_run.reused:
        pytest.skip(f"no {page}: run `dvc repro notebooks` in the reused project")
    unexecuted = tmp_path / "unexecuted.html"
    unexecuted.write_text(to_html(nbformat.read(ROOT / "notebooks" / f"{NOTEBOOK}.ipynb", as_version=4)))

    rendered = screenshot(chromium, page, tmp_path / "rendered.png")
    baseline = screenshot(chromium, unexecuted, tmp_path / "unexecuted.png")

    assert rendered.shape[1] == 1280 and rendered.std() > 10  # a page was drawn, not a blank one
    assert chart_pixels(baseline) < 200  # the notebook's code and text alone: no chart
    assert chart_pixels(rendered) > 5000  # bars of the charts, drawn from the inline PNGs
