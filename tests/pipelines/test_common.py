"""What every stage shares (pipelines/_common.py): params read through the settings' reader, from the file DVC
tracks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines._common import base_params, load_params, serve_params


def test_stages_read_the_params_file_of_their_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    """DVC runs a stage in the project root (or in a copy of it, as the pipeline tests do) and tracks that
    params.yaml: a SWITCHBOARD_PARAMS_FILE meant for the running bot must not change what a stage reads."""
    (tmp_path / "params.yaml").write_text(
        "base: {seed: 7, tenant: globex}\nsplit_nlu: {test_fraction: 0.3}\n"
    )
    elsewhere = tmp_path / "bot" / "params.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text("base: {seed: 1}\n")
    monkeypatch.setenv("SWITCHBOARD_PARAMS_FILE", str(elsewhere))
    monkeypatch.chdir(tmp_path)
    assert load_params("split_nlu") == {"test_fraction": 0.3}
    assert load_params("missing") == {}
    assert (base_params().seed, base_params().tenant, base_params().mlflow_experiment) == (
        7,
        "globex",
        "switchboard",
    )
    assert serve_params().knowledge_top_k == 3  # absent: the one default (app/settings.py ServeParams)
    load_params("split_nlu")["test_fraction"] = 1.0  # a stage changing its copy changes nothing for the next
    assert load_params("split_nlu") == {"test_fraction": 0.3}


def test_a_bad_base_section_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "params.yaml").write_text("base: {seed: many}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="invalid `base` section .*seed"):
        base_params()


def test_the_mlflow_store_is_the_projects_in_a_queued_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    """A queued experiment's stages run in a temporary copy: their runs go to the store of the project the
    experiment was queued in (DVC_ROOT), where `make mlflow` shows them; outside DVC, the working directory's."""
    from pipelines._common import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    copy = tmp_path / "project" / ".dvc" / "tmp" / "exps" / "tmpabc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    assert tracking_uri() == f"sqlite:///{copy / 'mlflow.db'}"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "project"))
    assert tracking_uri() == f"sqlite:///{tmp_path / 'project' / 'mlflow.db'}"
