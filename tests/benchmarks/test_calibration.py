"""benchmarks/calibration.py: bad input is one line and an exit code, before any training; the reliability
diagram is drawn from the reports. (The run itself trains three Rasa models: `python benchmarks/calibration.py`.)"""

from __future__ import annotations

import pytest

from tests.benchmarks import script_module
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    yield from script_module("calibration")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--train", "nope.yml"], "calibration: nope.yml not found (run `dvc repro split_nlu` first)"),
        (["--config", str(ROOT / "nlu" / "configs" / "ours.yml")], "ours.yml does not fine-tune its encoder"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(bench, tmp_path, capsys, args, message):
    data = tmp_path / "data.yml"
    data.write_text('version: "3.1"\nnlu: []\n')
    defaults = ["--train", str(data), "--validation", str(data), "--work", str(tmp_path / "work")]
    assert bench.main([*defaults, *args, "--json", str(tmp_path / "out.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert not (tmp_path / "work").exists() and not (tmp_path / "out.json").exists()


def test_the_reliability_diagram_is_a_png(bench, tmp_path):
    bins = [{"confidence": 0.55, "accuracy": 0.5}, {"confidence": 0.95, "accuracy": 0.9}]
    png = bench.plot({"a": {"ece": 0.05, "bins": bins}}, tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
