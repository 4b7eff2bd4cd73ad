"""benchmarks/render.py runs every channel's real rendering path and reports REST as the baseline."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[4] / "benchmarks" / "render.py"


@pytest.fixture(scope="module")
def render():
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("render_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_benchmark"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("render_benchmark", None)
        sys.path[:] = saved


def test_every_channel_renders_every_kind_of_reply(render):
    import asyncio

    renderers = render.renderers()
    outputs = {name: [asyncio.run(f(m)) for m in render.MESSAGES.values()] for name, f in renderers.items()}
    assert json.loads(outputs["REST (baseline)"][0]) == [
        {"recipient_id": "acme:alice", "text": render.MESSAGES["greeting"]["text"]}
    ]
    assert "](https://help.northwind.example/search?q=Shipping" in outputs["web"][1]
    assert outputs["voice"][3].count("O R D 1 0 0 4 2") == 1


def test_the_run_writes_one_row_per_channel(render, tmp_path, capsys):
    assert render.main(["--rounds", "2", "--warmup", "0", "--json", str(tmp_path / "render.json")]) == 0
    figures = json.loads((tmp_path / "render.json").read_text())
    rows = {row["channel"]: row for row in figures["channels"]}
    assert list(rows) == ["REST (baseline)", "web", "Slack", "Teams", "SMS", "voice"]
    assert all(row["replies"] == 2 * len(render.MESSAGES) for row in rows.values())
    assert rows["REST (baseline)"]["added_p50_us"] == 0
    assert "REST (baseline)" in capsys.readouterr().out
    assert render.main(["--rounds", "0"]) == 2
