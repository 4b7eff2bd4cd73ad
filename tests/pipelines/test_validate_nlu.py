"""validate_nlu stops the pipeline on bad training data with one line naming the file and line."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, copy_project, guarded_env

BAD = {
    "syntax": (
        'version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n      - hi\n   - oops: [\n',
        ":6: YAML syntax error",
    ),
    "entity": (
        'version: "3.1"\nnlu:\n  - intent: greet\n    examples: |\n      - hi [Bob](person_name)\n',
        ":5: entity 'person_name' is not declared",
    ),
    "empty": (
        'version: "3.1"\nnlu:\n  - intent: ask_warranty\n    examples: |\n',
        ":3: intent 'ask_warranty' has no examples",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_stage_fails_with_one_line_naming_file_and_line(tmp_path, case):
    shutil.copytree(ROOT / "nlu" / "data", tmp_path / "data")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    bad = tmp_path / "data" / "nlu" / "bad.yml"
    bad.write_text(BAD[case][0])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.validate_nlu",
            "--domain",
            str(ROOT / "nlu" / "domain.yml"),
            "--data",
            str(tmp_path / "data"),
            "--config",
            str(ROOT / "nlu" / "configs" / "light.yml"),
            "--out",
            str(tmp_path / "validate.json"),
        ],
        cwd=tmp_path,
        env=guarded_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("validate_nlu:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"validate_nlu: invalid training data: data/nlu/{bad.name}{BAD[case][1]}")
    assert not (tmp_path / "validate.json").exists()


@pytest.mark.slow
@pytest.mark.pipeline
def test_dvc_repro_stops_at_validate_and_trains_nothing(tmp_path):
    root = copy_project(tmp_path / "project")
    bad = root / "nlu" / "data" / "nlu" / "bad.yml"
    bad.write_text(BAD["entity"][0])
    result = subprocess.run(
        ["dvc", "repro", "train_nlu"],
        cwd=root,
        env=guarded_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode != 0
    assert f"nlu/data/nlu/bad.yml{BAD['entity'][1]}" in result.stderr + result.stdout
    assert "Running stage 'split_nlu'" not in result.stdout
    assert not (root / "nlu" / "models").exists() and not (root / "nlu" / "build" / "split").exists()
