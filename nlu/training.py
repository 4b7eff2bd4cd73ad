"""Validate, split and train with Rasa (run in its own environment through ``nlu.rasa_runner``)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from nlu.onnx_export import ENTITIES_FILE, MODEL_FILE, TOKENIZER_FILE, featurizer_of
from nlu.rasa_runner import RasaError, run_in_rasa_env, run_rasa

MODEL_NAME = "switchboard"


def run_rasa_tool(args: Sequence[str], quiet: bool = False) -> str:
    """Run ``python -m nlu.rasa_tools <args>`` in the Rasa environment; raise ``RasaError`` on failure.

    Output is streamed to stderr as it comes (progress bars of long runs) unless ``quiet``.
    """
    return run_in_rasa_env("nlu.rasa_tools", args, f"nlu.rasa_tools {args[0]}", quiet=quiet)


def validate_data(domain: Path, data: Path, config: Path, fail_on_warnings: bool = False) -> dict[str, Any]:
    """Check the data ourselves (file and line of each problem), then run ``rasa data validate``.

    Raises ``RasaError`` with one line per problem, each naming the file (and line where known).
    """
    from nlu.data_checks import check_nlu_data

    problems = check_nlu_data(domain, data)
    if problems:
        raise RasaError("\n".join(problems))
    args = ["data", "validate", "--domain", str(domain), "--data", str(data), "--config", str(config)]
    if fail_on_warnings:
        args.append("--fail-on-warnings")
    start = time.perf_counter()
    output = run_rasa(args, quiet=True)
    warnings = [line for line in output.splitlines() if "UserWarning" in line or "warning" in line.lower()]
    return {"valid": True, "warnings": len(warnings), "seconds": round(time.perf_counter() - start, 2)}


def split_data(
    nlu_data: Sequence[Path], out_dir: Path, test_fraction: float, seed: int, validation_fraction: float = 0.0
) -> dict[str, Path]:
    """Stratified train/test split of the NLU examples, and a validation split of the training part."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_rasa_tool(
        [
            "split",
            "--data",
            *map(str, nlu_data),
            "--out",
            str(out_dir),
            "--test-fraction",
            str(test_fraction),
            "--validation-fraction",
            str(validation_fraction),
            "--seed",
            str(seed),
        ],
        quiet=True,
    )
    paths = {"train": out_dir / "training_data.yml", "test": out_dir / "test_data.yml"}
    if validation_fraction > 0:
        paths |= {
            "inner_train": out_dir / "validation" / "training_data.yml",
            "validation": out_dir / "validation" / "test_data.yml",
        }
    return paths


def encoder_fingerprint(folder: Path) -> str:
    """SHA-256 over the encoder files (model, tokenizer, and the entity labels where the encoder has an entity
    head): part of Rasa's cache key."""
    digest = hashlib.sha256()
    for name in (MODEL_FILE, TOKENIZER_FILE, ENTITIES_FILE):
        if name == ENTITIES_FILE and not (folder / name).is_file():
            continue
        with (folder / name).open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def render_config(
    template: Path,
    out: Path,
    fallback_threshold: float,
    ambiguity_threshold: float,
    encoder_dir: Path | None = None,
) -> dict:
    """Write the training config: the named template with the FallbackClassifier thresholds filled in.

    When the pipeline has our ONNX featurizer, ``encoder_dir`` (default: its ``model_dir``) is written
    into it with the encoder files' content hash, so Rasa never reuses a cached, older encoder.
    """
    config = yaml.safe_load(template.read_text())
    pipeline = config.get("pipeline", [])
    fallback = [c for c in pipeline if c.get("name") == "FallbackClassifier"]
    if not fallback:
        raise ValueError(f"{template}: the pipeline has no FallbackClassifier to set the threshold on")
    fallback[0].update(
        threshold=round(float(fallback_threshold), 4),
        ambiguity_threshold=round(float(ambiguity_threshold), 4),
    )
    if (component := featurizer_of(pipeline)) is not None:
        if component.get("encoder") == "finetuned" and encoder_dir is None:
            raise ValueError(
                f"{template}: the featurizer's encoder is `finetuned`: render it with the fine-tuned "
                f"encoder's folder (finetune_encoder stage, nlu.finetune)"
            )
        folder = Path(encoder_dir or component.get("model_dir") or "nlu/build/encoder")
        if not (folder / MODEL_FILE).exists():
            raise FileNotFoundError(
                f"{template}: encoder {folder}/{MODEL_FILE} is missing: run `dvc repro export_encoder` first"
            )
        component.update(model_dir=str(folder), encoder_sha256=encoder_fingerprint(folder))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"# Generated from {template} by the NLU pipeline: do not edit.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return config


def uses_encoder(config: Path) -> bool:
    """Whether a config's pipeline runs our ONNX featurizer (so needs the exported encoder)."""
    return featurizer_of((yaml.safe_load(config.read_text()) or {}).get("pipeline", [])) is not None


def train(config: Path, domain: Path, data: list[Path], out_dir: Path) -> tuple[Path, float]:
    """Train the Rasa model (NLU + dialogue); return its path and the training time in seconds."""
    start = time.perf_counter()
    run_rasa(
        [
            "train",
            "--config",
            str(config),
            "--domain",
            str(domain),
            "--data",
            *map(str, data),
            "--out",
            str(out_dir),
            "--fixed-model-name",
            MODEL_NAME,
            "--force",
        ]
    )
    model = out_dir / f"{MODEL_NAME}.tar.gz"
    if not model.exists():
        raise RasaError(f"rasa train finished but {model} is missing")
    return model, time.perf_counter() - start


def predict(model: Path, data: Sequence[Path], out: Path) -> dict[str, Any]:
    """Parse every example of ``data`` with ``model`` as the server does (JSON lines in ``out``)."""
    output = run_rasa_tool(["predict", "--model", str(model), "--data", *map(str, data), "--out", str(out)])
    return json.loads(output.strip().splitlines()[-1])


def nlu_job(
    config: Path,
    train_data: Sequence[Path],
    models: Path,
    name: str,
    predictions: dict[Path, Sequence[Path]],
    info: Path,
) -> dict[str, Any]:
    """One job for :func:`train_and_predict`: train on ``train_data``, parse each data set into its file."""
    return {
        "config": str(config),
        "train": [str(p) for p in train_data],
        "models": str(models),
        "name": name,
        "predict": {str(out): [str(f) for f in files] for out, files in predictions.items()},
        "info": str(info),
    }


def train_and_predict(jobs: Sequence[dict[str, Any]], plan: Path) -> list[dict[str, Any]]:
    """Run the jobs (``rasa train nlu`` + parsing) in one Rasa process; return each job's info."""
    plan.parent.mkdir(parents=True, exist_ok=True)
    plan.write_text(json.dumps(list(jobs), indent=2))
    run_rasa_tool(["train-predict", str(plan)])
    return [json.loads(Path(job["info"]).read_text()) for job in jobs]


def train_nlu_and_predict(
    config: Path,
    train_data: Sequence[Path],
    models: Path,
    name: str,
    predictions: dict[Path, Sequence[Path]],
    info: Path,
) -> dict[str, Any]:
    """``rasa train nlu`` on ``train_data``, then parse each data set into its JSON-lines file."""
    job = nlu_job(config, train_data, models, name, predictions, info)
    return train_and_predict([job], info.with_name(info.stem + "_plan.json"))[0]


def validation_predictions(
    template: Path,
    train: Path,
    validation: Path,
    work: Path,
    thresholds: tuple[float, float],
    encoder: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The validation model: render ``template`` with ``thresholds`` (fallback, ambiguity) and ``encoder`` into
    ``work``, train on ``train``, parse ``validation`` as the server would. Return the predictions (JSON lines,
    ``nlu.evaluation.read_predictions``) and the training info. ``select_threshold_nlu`` chooses the out-of-scope
    threshold on them; ``benchmarks/calibration.py`` measures their calibration the same way."""
    config = work / "config.yml"
    render_config(template, config, thresholds[0], thresholds[1], encoder)
    predictions = work / "validation.jsonl"
    info = train_nlu_and_predict(
        config, [train], work, "validation", {predictions: [validation]}, work / "info.json"
    )
    return predictions, info
