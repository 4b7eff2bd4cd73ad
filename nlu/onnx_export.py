"""The sentence encoder as one ONNX file, as the Rasa environment runs it (no torch there).

One definition of the export, shared by the stage that exports the packaged MiniLM (``export_encoder``) and the
one that exports a fine-tuned copy (``nlu.finetune``): the transformer plus sentence-transformers' mean pooling
and L2 normalisation in one graph (``input_ids``, ``attention_mask``, ``token_type_ids`` ->
``sentence_embedding``), a ``tokenizer.json`` that pads to the batch's longest sequence and truncates at
``max_length``, and the checks (cosine to a reference, latency of one sentence). A fine-tuned encoder with an
entity head (``nlu.finetune``) has a second output, ``entity_logits`` (one row of label logits per word piece), and
its labels in ``entities.json``: one run of the encoder gives both. :class:`OnnxEncoder` runs an exported folder
in either environment: the served Rasa components (``nlu.components.onnx_featurizer``,
``nlu.components.bio_entities``), the checks here and the benchmarks.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: The exported folder's files (what ``OnnxSentenceFeaturizer`` copies into the Rasa model).
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
#: The entity head's labels (only in a folder whose model has the ``entity_logits`` output).
ENTITIES_FILE = "entities.json"


#: The Rasa component that runs this encoder (``nlu.components.onnx_featurizer``).
FEATURIZER = "OnnxSentenceFeaturizer"


def featurizer_of(pipeline: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A Rasa config pipeline's :data:`FEATURIZER` component (named by class, or by a module path ending in it),
    or None."""
    return next((c for c in pipeline if str(c.get("name", "")).endswith(FEATURIZER)), None)


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


class OnnxEncoder:
    """An ONNX sentence encoder and its tokenizer: text in, L2-normalised embeddings out."""

    def __init__(
        self,
        model: bytes,
        tokenizer_json: str,
        batch_threads: int = 0,
        single_threads: int = 1,
        entity_labels: list[str] | None = None,
    ):
        from tokenizers import Tokenizer

        self._model = model
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self._threads = {"batch": batch_threads, "single": single_threads}
        self._sessions: dict[str, Any] = {}
        self.entity_labels = (
            list(entity_labels) if entity_labels else None
        )  # the entity head's, if it has one

    @classmethod
    def from_dir(cls, folder: Path, **kwargs: Any) -> OnnxEncoder:
        entities = folder / ENTITIES_FILE
        labels = json.loads(entities.read_text())["labels"] if entities.is_file() else None
        return cls(
            (folder / MODEL_FILE).read_bytes(),
            (folder / TOKENIZER_FILE).read_text(),
            entity_labels=labels,
            **kwargs,
        )

    def _session(self, kind: str) -> Any:
        if kind not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads[kind]
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._sessions[kind] = ort.InferenceSession(
                self._model, options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[kind]

    def _run(self, texts: list[str], kind: str) -> np.ndarray:
        return self._outputs(texts, kind, ["sentence_embedding"])[0][0].astype(np.float32)

    def _outputs(self, texts: list[str], kind: str, names: list[str]) -> tuple[list[np.ndarray], list[Any]]:
        encodings = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        return self._session(kind).run(names, feeds), encodings

    def token_logits(self, text: str) -> np.ndarray:
        """The entity head's logits of one text: one row per word piece (``[CLS]`` and ``[SEP]`` included)."""
        return self.encode_tagged(text)[1]

    def encode_tagged(self, text: str) -> tuple[np.ndarray, np.ndarray, Any]:
        """One text's embedding, its entity head's per-piece logits and its tokenizer encoding (offsets, word ids),
        from one run of the encoder. ``ValueError`` for an encoder without an entity head."""
        if not self.entity_labels:
            raise ValueError("this encoder has no entity head (no entities.json beside its model)")
        (vector, logits), encodings = self._outputs([text], "single", ["sentence_embedding", "entity_logits"])
        return vector[0].astype(np.float32), logits[0].astype(np.float32), encodings[0]

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``texts`` in input order; batches of similar length keep padding small."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if len(texts) == 1:
            return self._run(texts, "single")
        order = np.argsort([len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            vectors = self._run([texts[i] for i in idx], "batch")
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[idx] = vectors
            done = min(start + batch_size, len(texts))
            if len(texts) > 2000 and (done // batch_size) % 50 == 0:
                logger.info(f"OnnxEncoder: embedded {done}/{len(texts)} messages")
        assert out is not None
        return out


def _torch_module(model_dir: Path, entity_head: Any = None):
    """The Hugging Face transformer wrapped with mean pooling and L2 normalisation (sentence-transformers), and
    ``entity_head`` (a linear layer over the last hidden states) as a second output when given."""
    import torch
    from transformers import AutoModel

    class MeanPooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
            self.entity_head = entity_head

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
            embedding = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            if self.entity_head is None:
                return embedding
            return embedding, self.entity_head(hidden)

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
    return OnnxEncoder(model.read_bytes(), tokenizer.read_text()).encode(sentences)


def single_latency_ms(model: Path, tokenizer: Path, sentences: list[str], repeats: int = 20) -> float:
    """Median time to embed one sentence (batch of 1, onnxruntime's default threads), in milliseconds."""
    encoder = OnnxEncoder(model.read_bytes(), tokenizer.read_text(), single_threads=0)
    times = []
    for _ in range(repeats):
        for sentence in sentences:
            start = time.perf_counter()
            encoder.encode([sentence])
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def export(model_dir: Path, out_dir: Path, opset: int, max_length: int, entity_head: Any = None) -> Path:
    """Export the pooled encoder to ``out_dir/model.onnx`` with dynamic batch and sequence axes (and
    ``entity_head``'s per-piece logits as the output ``entity_logits`` when given)."""
    import torch

    module = _torch_module(model_dir, entity_head)
    outputs = ["sentence_embedding", *(["entity_logits"] if entity_head is not None else [])]
    dummy = torch.ones((2, 8), dtype=torch.long)
    path = out_dir / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(
            module,
            (dummy, dummy, torch.zeros_like(dummy)),
            str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=outputs,
            dynamic_axes={
                name: {0: "batch", 1: "sequence"}
                for name in ("input_ids", "attention_mask", "token_type_ids", *outputs[1:])
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
