"""The notebooks stage on small notebooks: parameters injected, HTML and executed copies written, and a failing
cell reported in one line with exit 1."""

from __future__ import annotations

import json

import nbformat

from pipelines.notebooks import main

ARGS = ["--nlu-results", "n", "--rag-results", "r", "--bot-results", "b", "--policy-results", "p"]


def write(path, *sources: str):
    cells = [nbformat.v4.new_markdown_cell("# What it answers")]
    cells.append(nbformat.v4.new_code_cell('ROOT = ".."\nRESULTS = {}', metadata={"tags": ["parameters"]}))
    cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_each_notebook_is_executed_with_the_parameters_and_rendered(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a launching process with a non-interactive backend (importing streamlit sets this) still gets the charts
    monkeypatch.setenv("MPLBACKEND", "Agg")
    chart = "import matplotlib.pyplot as plt\nplt.bar([1, 2], [3, 4])\nplt.show()"
    notebook = write(tmp_path / "a.ipynb", "print(RESULTS['bot_results'], ROOT)", chart)
    assert main(["--notebooks", str(notebook), "--out", "html", *ARGS]) == 0
    executed = nbformat.read(tmp_path / "html" / "a.ipynb", as_version=4)
    assert executed.cells[3].outputs[0]["text"] == f"b {tmp_path}\n"
    assert 'src="data:image/png;base64,' in (tmp_path / "html" / "a.html").read_text()
    assert list(json.loads((tmp_path / "html" / "timings.json").read_text())["seconds"]) == ["a"]


def test_a_failing_cell_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    notebook = write(tmp_path / "broken.ipynb", "1 / 0")
    assert main(["--notebooks", str(notebook), "--out", "html", *ARGS]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"notebooks: error: {notebook}: ZeroDivisionError: division by zero"
    assert not (tmp_path / "html" / "broken.html").exists()
