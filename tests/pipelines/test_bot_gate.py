"""The bot-level evaluation catches a regression the NLU figures cannot see, and the gate refuses it.

A rule that sends ``out_of_scope`` to the order lookup leaves the NLU model as it was (same intents, same
figures), but the bot users talk to now asks "whats the weather in berlin tomorrow" for an order number:
``evaluate_bot`` plays the conversations through the served stack, handler accuracy drops, and
``promote_nlu`` keeps the champion (the model the pipeline run promoted) served. (The issue's example sent
``out_of_scope`` to the knowledge action; that action now takes out-of-scope questions on purpose and answers
them only when the articles are sure, else with the out-of-scope reply, so that rule is no longer a regression.)
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

BROKEN_RULE = """
  - rule: Out of scope (a regression, sent to the order lookup)
    steps:
      - intent: out_of_scope
      - action: action_track_order
"""


def test_a_rule_that_breaks_out_of_scope_is_refused_by_the_gate(pipeline_run, tmp_path):
    if pipeline_run.reused:
        pytest.skip("needs a pipeline run of its own (SWITCHBOARD_TEST_PIPELINE_ROOT reuses one)")
    root = shutil.copytree(pipeline_run.root, tmp_path / "project", symlinks=True)
    before = json.loads((root / "nlu" / "results" / "bot" / "metrics.json").read_text())["frozen"]
    served = (root / "nlu" / "serving" / "model.tar.gz").read_bytes()

    rules = root / "nlu" / "data" / "rules" / "general.yml"
    text = rules.read_text()
    start = text.index("  - rule: Out of scope")
    end = text.index("  - rule:", start + 1)
    rules.write_text(text[:start] + BROKEN_RULE.lstrip("\n") + text[end:])
    run = subprocess.run(
        ["dvc", "repro", "promote_nlu"], cwd=root, env=pipeline_run.env, capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    after = json.loads((root / "nlu" / "results" / "bot" / "metrics.json").read_text())["frozen"]
    assert after["handler_accuracy"] < before["handler_accuracy"] - 0.02, (before, after)
    assert (
        after["confusion"]["out_of_scope"].get("out_of_scope", 0)
        < before["confusion"]["out_of_scope"]["out_of_scope"]
    )
    decision = json.loads((root / "nlu" / "results" / "promotion.json").read_text())
    assert not decision["promoted"] and decision["version"] == 2 and decision["champion_version"] == 1
    assert any("handler_accuracy" in reason and "refused" in reason for reason in decision["reasons"])
    assert (root / "nlu" / "serving" / "model.tar.gz").read_bytes() == served  # the champion stays served
