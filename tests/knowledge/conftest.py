"""Fixtures for the knowledge tests: a tiny two-tenant knowledge base and deterministic embeddings."""

from __future__ import annotations

import hashlib
import math
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding

from app.settings import get_settings
from knowledge.index import BuildReport, build_index


class HashingEmbedding(BaseEmbedding):
    """Bag-of-words hashed into a small normalised vector: fast, deterministic, lexical similarity.

    Text without any Latin letter or digit embeds to the zero vector (like an out-of-vocabulary query).
    """

    model_name: str = "hashing-bow-128"
    dim: int = 128

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for token in re.findall(r"[a-z0-9]+", text.lower()):
            vector[int(hashlib.md5(token.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(value * value for value in vector))
        return [value / norm for value in vector] if norm else vector

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


class CountingEmbedding(HashingEmbedding):
    """The hashing embedding, remembering every text it was asked to embed (for incremental builds)."""

    seen: list[str] = []

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self.seen.extend(texts)
        return [self._vector(text) for text in texts]


DOCS = {
    "acme/refunds.md": """\
        ---
        id: acme-refunds
        title: Refund policy
        tenant: acme
        tags: [billing, refunds]
        updated: 2025-01-31
        ---
        # Refund policy
        Acme refunds most purchases.
        ## Who can ask for a refund
        Any customer can ask for a refund within 30 days of delivery. Opened software cannot be refunded.
        ## How refunds are paid
        Refunds go back to the original payment method within 5 business days. Store credit is available on request.
        """,
    "acme/shipping.md": """\
        ---
        id: acme-shipping
        title: Shipping times
        tags: [delivery]
        ---
        # Shipping times
        ## Delivery times
        Standard delivery takes 3 to 5 business days. Express delivery arrives the next business day.
        ## Tracking a parcel
        Every order confirmation email contains a tracking link for the parcel.
        """,
    "globex/refunds.md": """\
        ---
        id: globex-refunds
        title: Globex refund rules
        tenant: globex
        ---
        # Globex refund rules
        ## Refund window
        Globex customers can ask for a refund within 14 days using the zebra refund code.
        """,
}


def write_docs(root: Path, docs: dict[str, str]) -> Path:
    """Write ``{relative path: Markdown}`` under ``root/docs`` plus a ``sources.yml``; return the latter."""
    for relative, text in docs.items():
        path = root / "docs" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    sources = root / "sources.yml"
    sources.write_text("sources:\n  - name: docs\n    type: folder\n    path: docs\n    glob: '**/*.md'\n")
    return sources


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Settings read afresh in every test (tests change ``SWITCHBOARD_*`` variables), none left behind."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def embed_model() -> HashingEmbedding:
    return HashingEmbedding()


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """``sources.yml`` of the tiny knowledge base (acme: refunds, shipping; globex: refunds)."""
    return write_docs(tmp_path, DOCS)


@pytest.fixture
def built(sources: Path, embed_model: HashingEmbedding) -> BuildReport:
    """The tiny knowledge base built with the hashing embedding into ``<tmp>/index`` (cache in ``<tmp>/.cache``)."""
    return build_index(
        sources,
        sources.parent / "index",
        chunk_size=256,
        chunk_overlap=32,
        embed_model=embed_model,
        show_progress=False,
    )
