"""Offline DVC plots: ``dvc plots show`` with the template of the ``plots_template`` stage draws its charts with
no network (the Vega scripts are inlined), checked in the page's HTML and in a headless Chromium screenshot.

Chromium comes from Debian's ``chromium`` package (``.ci/run`` installs it): the screenshot test
skips without it and fails under ``CI=true``. Chromium runs with every host name unresolvable, so a page that
still needed a CDN would stay blank rather than reach the network.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pipelines.plots_template import main
from tests.conftest import guarded_env, required_command

EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"']?(https?:)?//", re.IGNORECASE)
DVC_WORKSPACE_COLOUR = (0x94, 0x5D, 0xD6)  # the colour dvc-render gives the workspace's lines


@pytest.fixture(scope="module")
def chromium() -> str:
    return required_command("chromium", "chromium-headless-shell", package="chromium")


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["dvc", *args], cwd=cwd, env=guarded_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture
def plotted(tmp_path: Path) -> Path:
    """A DVC project with one plot (a threshold curve, as nlu/results writes it), shown with the offline
    template: the page ``dvc plots show`` wrote."""
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    dvc(project, "init", "-q")
    (project / "curve.csv").write_text(
        "threshold,in_scope_accuracy,oos_recall\n0.1,0.95,0.2\n0.3,0.9,0.6\n0.5,0.8,0.9\n"
    )
    (project / "dvc.yaml").write_text(
        "plots:\n  - curve.csv:\n      x: threshold\n      y: [in_scope_accuracy, oos_recall]\n"
    )
    template = project / "template.html"
    assert main(["--out", str(template)]) == 0
    dvc(project, "plots", "show", "--html-template", str(template), "-o", "shown")
    return project / "shown" / "index.html"


def test_the_page_loads_no_external_script(plotted: Path) -> None:
    page = plotted.read_text()
    assert "vegaEmbed('#" in page  # the plot is there, drawn by the inlined vega-embed
    assert EXTERNAL_SCRIPT.findall(page) == [] and "cdn.jsdelivr" not in page


def test_chromium_draws_the_plot_offline(plotted: Path, chromium: str, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    shot = tmp_path / "plot.png"
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=900,600",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=10000", f"--screenshot={shot}",
         plotted.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    lines = int((np.abs(pixels - DVC_WORKSPACE_COLOUR).max(axis=2) <= 24).sum())
    # the two curves: ~700 pixels measured; DVC's default page (scripts from a CDN) drew none here, blank
    assert lines > 200


@pytest.mark.pipeline
@pytest.mark.slow
def test_dvc_plots_show_of_the_pipeline_is_offline(pipeline_run, tmp_path: Path) -> None:
    """In the built project, plain ``dvc plots show`` (the template named in .dvc/config) draws every plot of
    dvc.yaml and loads no script from the network."""
    root = pipeline_run.root
    assert (root / "reports" / "dvc_plots_template.html").is_file()
    dvc(root, "plots", "show", "-o", str(tmp_path / "shown"))
    page = (tmp_path / "shown" / "index.html").read_text()
    assert EXTERNAL_SCRIPT.findall(page) == [] and "cdn.jsdelivr" not in page
    assert (
        page.count("vegaEmbed('#") >= 8
    )  # the plots over CSV files: threshold curves, confusions, RAG curves
    assert (root / "reports" / "charts" / "threshold_curve.svg").is_file()
