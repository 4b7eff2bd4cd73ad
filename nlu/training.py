"""Validate, split and train with Rasa (run in its own environment through ``nlu.rasa_runner``)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from nlu.rasa_runner import RasaError, run_rasa

MODEL_NAME = "switchboard"
_LOCATION = re.compile(r"(?P<file>[\w./-]+\.ya?ml)")


def validate_data(domain: Path, data: Path, config: Path, fail_on_warnings: bool = False) -> dict[str, Any]:
    """Run ``rasa data validate``; raise ``RasaError`` naming the file when the data is broken."""
    args = ["data", "validate", "--domain", str(domain), "--data", str(data), "--config", str(config)]
    if fail_on_warnings:
        args.append("--fail-on-warnings")
    start = time.perf_counter()
    output = run_rasa(args)
    warnings = [line for line in output.splitlines() if "UserWarning" in line or "warning" in line.lower()]
    return {"valid": True, "warnings": len(warnings), "seconds": round(time.perf_counter() - start, 2)}


def split_data(nlu_data: Path, out_dir: Path, test_fraction: float, seed: int) -> dict[str, Path]:
    """Stratified train/test split of the NLU examples (``rasa data split nlu``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_rasa(
        ["data", "split", "nlu", "--nlu", str(nlu_data), "--training-fraction", str(1 - test_fraction),
         "--random-seed", str(seed), "--out", str(out_dir)],
        quiet=True,
    )
    return {"train": out_dir / "training_data.yml", "test": out_dir / "test_data.yml"}


def render_config(template: Path, out: Path, fallback_threshold: float, ambiguity_threshold: float) -> dict:
    """Write the training config: the named template with the FallbackClassifier thresholds from params."""
    config = yaml.safe_load(template.read_text())
    fallback = [c for c in config.get("pipeline", []) if c.get("name") == "FallbackClassifier"]
    if not fallback:
        raise ValueError(f"{template}: the pipeline has no FallbackClassifier to set the threshold on")
    fallback[0].update(threshold=fallback_threshold, ambiguity_threshold=ambiguity_threshold)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Generated from {template} by pipelines/train_nlu.py: do not edit.\n"
                   + yaml.safe_dump(config, sort_keys=False))
    return config


def train(config: Path, domain: Path, data: list[Path], out_dir: Path) -> tuple[Path, float]:
    """Train the Rasa model (NLU + dialogue); return its path and the training time in seconds."""
    start = time.perf_counter()
    run_rasa(
        ["train", "--config", str(config), "--domain", str(domain), "--data", *map(str, data),
         "--out", str(out_dir), "--fixed-model-name", MODEL_NAME, "--force"]
    )
    model = out_dir / f"{MODEL_NAME}.tar.gz"
    if not model.exists():
        raise RasaError(f"rasa train finished but {model} is missing")
    return model, time.perf_counter() - start
