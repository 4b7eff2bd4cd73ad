"""The sentence encoder as one ONNX file, as the Rasa environment runs it (no torch there).

One definition of the export, shared by the stage that exports the packaged MiniLM (``export_encoder``) and the
one that exports a fine-tuned copy (``nlu.finetune``): the transformer plus sentence-transformers' mean pooling
and L2 normalisation in one graph (``input_ids``, ``attention_mask``, ``token_type_ids`` ->
``sentence_embedding``), a ``tokenizer.json`` that pads to the batch's longest sequence and truncates at
``max_length``, and the checks (cosine to a reference, latency of one sentence).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ExportSettings:
    """params.yaml ``export_encoder``: the ONNX opset, the tokenizer's truncation length and the smallest cosine
    an export may have to its reference model."""

    opset: int = 17
    max_length: int = 256
    min_cosine: float = 0.999

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> ExportSettings:
        params = params or {}
        return cls(
            opset=int(params.get("opset", cls.opset)),
            max_length=int(params.get("max_length", cls.max_length)),
            min_cosine=float(params.get("min_cosine", cls.min_cosine)),
        )


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
