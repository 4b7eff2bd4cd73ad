"""Where the chunk vectors live: the embedded on-disk store (default) or PostgreSQL with pgvector.

Both are llama-index vector stores (``BasePydanticVectorStore``), so the dense retriever queries them the
same way (``VectorStoreQuery`` with a tenant ``MetadataFilters``). An adapter wraps each one with what the
knowledge layer needs beyond llama-index's interface:

- :meth:`VectorStoreAdapter.publish`: replace the whole content *atomically*. The embedded store writes
  ``vectors.npy`` into the index's staging folder (published by the folder swap in
  :mod:`knowledge.index`); pgvector fills a fresh staging table and swaps it in with two ``ALTER TABLE
  ... RENAME`` statements in one transaction, so a reader sees the old rows or the new ones.
- :meth:`VectorStoreAdapter.upsert_document` / :meth:`VectorStoreAdapter.delete_document`: change one
  document's chunks in place (by document id), for operational fixes without a rebuild.

Choose the store with ``SWITCHBOARD_VECTOR_STORE`` (``embedded`` or ``pgvector``), else the
``build_index.vector_store`` param; pgvector reads its URL from ``SWITCHBOARD_PGVECTOR_URL`` (never from
params: it may hold a password) and its table name from ``SWITCHBOARD_PGVECTOR_TABLE`` or the
``build_index.pgvector_table`` param. The variables are :class:`app.settings.Settings` fields (so ``.env``
works too).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores import MetadataFilter, MetadataFilters
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    VectorStoreQuery,
    VectorStoreQueryResult,
)
from pydantic import PrivateAttr

from knowledge.settings import knowledge_settings

STORE_KINDS = ("embedded", "pgvector")
VECTORS_FILE = "vectors.npy"
VECTOR_IDS_FILE = "vector_ids.json"
DEFAULT_TABLE = "switchboard_knowledge"
#: Metadata the embedded store keeps per vector to filter on.
FILTER_KEYS = ("tenant", "doc_id")
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


class StoreConfigError(ValueError):
    """The vector store configuration is incomplete or invalid."""


def tenant_filter(tenant: str) -> MetadataFilters:
    """The filter every query carries: only chunks of ``tenant``."""
    return MetadataFilters(filters=[MetadataFilter(key="tenant", value=tenant)])


# --- the embedded store ---------------------------------------------------------------------------


class NumpyVectorStore(BasePydanticVectorStore):
    """An in-memory matrix of unit vectors with a little metadata, persisted as ``.npy`` + JSON.

    Exact search (one matrix product), equality / ``in`` metadata filters combined with AND: enough for a
    knowledge base of up to a few hundred thousand chunks on one machine.
    """

    stores_text: bool = False
    is_embedding_query: bool = True

    _ids: list[str] = PrivateAttr(default_factory=list)
    _meta: list[dict[str, str]] = PrivateAttr(default_factory=list)
    _matrix: np.ndarray = PrivateAttr(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    _pending: list[np.ndarray] = PrivateAttr(default_factory=list)

    @property
    def client(self) -> None:
        return None

    @classmethod
    def class_name(cls) -> str:
        return "NumpyVectorStore"

    def __len__(self) -> int:
        self._flush()
        return len(self._ids)

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Add nodes with embeddings; a node id already present is replaced."""
        if not nodes:
            return []
        self._flush()
        replaced = {node.node_id for node in nodes} & set(self._ids)
        if replaced:
            self._keep([i for i, node_id in enumerate(self._ids) if node_id not in replaced])
        vectors = np.asarray([node.get_embedding() for node in nodes], dtype=np.float32)
        self._pending.append(vectors)
        for node in nodes:
            self._ids.append(node.node_id)
            self._meta.append(
                {key: str(node.metadata.get(key, "")) for key in FILTER_KEYS}
                | {"ref_doc_id": str(node.ref_doc_id or node.metadata.get("doc_id", ""))}
            )
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove every vector of one document."""
        self._flush()
        self._keep([i for i, meta in enumerate(self._meta) if meta["ref_doc_id"] != ref_doc_id])

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **kwargs: Any
    ) -> None:
        """Remove vectors by node id (and/or by filter)."""
        self._flush()
        drop = set(node_ids or [])
        keep = [
            i
            for i, (node_id, meta) in enumerate(zip(self._ids, self._meta, strict=True))
            if node_id not in drop and not (filters is not None and _matches(meta, filters))
        ]
        self._keep(keep)

    def clear(self) -> None:
        self._ids, self._meta, self._pending = [], [], []
        self._matrix = np.zeros((0, 0), dtype=np.float32)

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` most similar vectors (cosine = dot product) that pass the filters."""
        self._flush()
        if query.query_embedding is None or not self._ids:
            return VectorStoreQueryResult(ids=[], similarities=[], nodes=None)
        vector = np.asarray(query.query_embedding, dtype=np.float32)
        scores = self._matrix @ vector
        if query.filters is not None:
            allowed = np.fromiter((_matches(meta, query.filters) for meta in self._meta), dtype=bool)
            scores = np.where(allowed, scores, -np.inf)
            available = int(allowed.sum())
        else:
            available = len(self._ids)
        k = min(query.similarity_top_k, available)
        if k <= 0:
            return VectorStoreQueryResult(ids=[], similarities=[], nodes=None)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return VectorStoreQueryResult(
            ids=[self._ids[i] for i in top], similarities=[float(scores[i]) for i in top], nodes=None
        )

    def persist(self, folder: Path | str, fs: Any = None) -> None:
        """Write ``vectors.npy`` and ``vector_ids.json`` into ``folder``."""
        self._flush()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / VECTORS_FILE, self._matrix.astype(np.float32))
        (folder / VECTOR_IDS_FILE).write_text(json.dumps({"ids": self._ids, "meta": self._meta}))

    @classmethod
    def from_folder(cls, folder: Path | str) -> NumpyVectorStore:
        """Read a store written by :meth:`persist`."""
        folder = Path(folder)
        store = cls()
        data = json.loads((folder / VECTOR_IDS_FILE).read_text())
        store._ids, store._meta = list(data["ids"]), list(data["meta"])
        store._matrix = np.load(folder / VECTORS_FILE).astype(np.float32)
        if store._matrix.shape[0] != len(store._ids):
            raise ValueError(f"{folder}: {VECTORS_FILE} and {VECTOR_IDS_FILE} disagree")
        return store

    def _flush(self) -> None:
        if self._pending:
            parts = ([self._matrix] if self._matrix.size else []) + self._pending
            self._matrix = np.vstack(parts).astype(np.float32)
            self._pending = []

    def _keep(self, rows: list[int]) -> None:
        self._ids = [self._ids[i] for i in rows]
        self._meta = [self._meta[i] for i in rows]
        self._matrix = self._matrix[rows] if self._matrix.size else self._matrix


def _matches(meta: Mapping[str, str], filters: MetadataFilters) -> bool:
    results = []
    for item in filters.filters:
        if isinstance(item, MetadataFilters):
            results.append(_matches(meta, item))
            continue
        value = meta.get(item.key)
        if item.operator == FilterOperator.EQ:
            results.append(value == str(item.value))
        elif item.operator == FilterOperator.IN:
            results.append(value in {str(v) for v in item.value})  # type: ignore[union-attr]
        elif item.operator == FilterOperator.NE:
            results.append(value != str(item.value))
        else:
            raise ValueError(f"the embedded store cannot filter with {item.operator!r}")
    if not results:
        return True
    return any(results) if filters.condition == FilterCondition.OR else all(results)


# --- configuration and adapters -------------------------------------------------------------------


@dataclass(frozen=True)
class StoreConfig:
    """Which vector store to use and where; see the module docstring for the variables read."""

    kind: str = "embedded"
    url: str | None = None
    table: str = DEFAULT_TABLE

    def __post_init__(self) -> None:
        if self.kind not in STORE_KINDS:
            raise StoreConfigError(
                f"unknown vector store {self.kind!r} (expected one of {', '.join(STORE_KINDS)})"
            )
        if not _TABLE_NAME.match(self.table):
            raise StoreConfigError(
                f"invalid pgvector table name {self.table!r} (lower-case letters, digits, _)"
            )
        if self.kind == "pgvector" and not self.url:
            raise StoreConfigError("the pgvector store needs SWITCHBOARD_PGVECTOR_URL (a PostgreSQL URL)")

    @classmethod
    def resolve(
        cls, params: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> StoreConfig:
        """The configuration from the settings, falling back to the ``build_index`` params.

        ``environ``: ``SWITCHBOARD_*`` variables to use instead of the process settings.
        """
        settings = knowledge_settings(environ)
        params = params or {}
        return cls(
            kind=(settings.vector_store or params.get("vector_store") or "embedded").lower(),
            url=settings.pgvector_url.get_secret_value() or None,
            table=settings.pgvector_table or params.get("pgvector_table") or DEFAULT_TABLE,
        )

    def describe(self) -> dict[str, str]:
        """What the manifest records: kind and table, and the URL without its password."""
        if self.kind == "embedded":
            return {"kind": "embedded"}
        from sqlalchemy.engine import make_url

        return {
            "kind": "pgvector",
            "table": self.table,
            "url": make_url(self.url).render_as_string(hide_password=True),
        }


class VectorStoreAdapter:
    """The knowledge layer's view of a vector store (see the module docstring)."""

    kind = "embedded"

    @property
    def store(self) -> BasePydanticVectorStore:
        """The llama-index vector store the dense retriever queries."""
        raise NotImplementedError

    def publish(self, nodes: Sequence[BaseNode], staging_dir: Path) -> None:
        """Replace the whole content with ``nodes`` (embedded, with ``tenant``/``doc_id`` metadata)."""
        raise NotImplementedError

    def upsert_document(self, doc_id: str, nodes: Sequence[BaseNode]) -> None:
        """Replace one document's chunks with ``nodes`` (all of that document)."""
        self.store.delete(doc_id)
        self.store.add(list(nodes))

    def delete_document(self, doc_id: str) -> None:
        """Remove one document's chunks."""
        self.store.delete(doc_id)

    def close(self) -> None:
        """Release connections (nothing to do for the embedded store)."""


class EmbeddedStoreAdapter(VectorStoreAdapter):
    """The default: a :class:`NumpyVectorStore` persisted inside the index folder."""

    kind = "embedded"

    def __init__(self, store: NumpyVectorStore | None = None):
        self._store = store or NumpyVectorStore()

    @classmethod
    def load(cls, index_dir: Path) -> EmbeddedStoreAdapter:
        return cls(NumpyVectorStore.from_folder(index_dir))

    @property
    def store(self) -> NumpyVectorStore:
        return self._store

    def publish(self, nodes: Sequence[BaseNode], staging_dir: Path) -> None:
        store = NumpyVectorStore()
        store.add(list(nodes))
        store.persist(staging_dir)
        self._store = store


class PgVectorStoreAdapter(VectorStoreAdapter):
    """PostgreSQL + pgvector through llama-index's ``PGVectorStore`` (table ``data_<table>``).

    Exact (sequential) cosine search by default, so results match the embedded store and a tenant
    filter never starves an approximate index; pass ``hnsw=True`` for an HNSW index at large scale.
    """

    kind = "pgvector"

    def __init__(self, url: str, table: str = DEFAULT_TABLE, embed_dim: int = 384, hnsw: bool = False):
        from sqlalchemy import create_engine

        self.url = _driver_url(url, "psycopg2")
        self.table = table
        self.embed_dim = embed_dim
        self.hnsw = hnsw
        self._engine = create_engine(self.url, pool_pre_ping=True)
        self._store: Any = None

    @classmethod
    def from_config(cls, config: StoreConfig, embed_dim: int = 384) -> PgVectorStoreAdapter:
        assert config.url is not None
        return cls(config.url, table=config.table, embed_dim=embed_dim)

    @property
    def store(self) -> BasePydanticVectorStore:
        if self._store is None:
            self._store = self._make_store(self.table)
        return self._store

    def publish(self, nodes: Sequence[BaseNode], staging_dir: Path) -> None:
        from sqlalchemy import text

        staging = f"{self.table}_staging_{uuid.uuid4().hex[:8]}"
        live, retired = f"data_{self.table}", f"data_{self.table}_retired"
        try:
            store = self._make_store(staging)
            for start in range(0, len(nodes), 500):
                store.add(list(nodes[start : start + 500]))
            _dispose(store)
            with self._engine.begin() as conn:
                conn.execute(text(f'DROP TABLE IF EXISTS "{retired}"'))
                conn.execute(text(f'ALTER TABLE IF EXISTS "{live}" RENAME TO "{retired}"'))
                conn.execute(text(f'ALTER TABLE "data_{staging}" RENAME TO "{live}"'))
                conn.execute(text(f'DROP TABLE IF EXISTS "{retired}"'))
        finally:
            with self._engine.begin() as conn:
                conn.execute(text(f'DROP TABLE IF EXISTS "data_{staging}"'))
        self._store = None  # the next query reconnects to the swapped-in table

    def count(self) -> int:
        """Rows in the live table (0 when it does not exist)."""
        from sqlalchemy import inspect, text

        if not inspect(self._engine).has_table(f"data_{self.table}"):
            return 0
        with self._engine.connect() as conn:
            return int(conn.execute(text(f'SELECT count(*) FROM "data_{self.table}"')).scalar_one())

    def drop(self) -> None:
        """Drop the live table (tests and clean-ups)."""
        from sqlalchemy import text

        with self._engine.begin() as conn:
            conn.execute(text(f'DROP TABLE IF EXISTS "data_{self.table}"'))
        self._store = None

    def close(self) -> None:
        if self._store is not None:
            _dispose(self._store)
            self._store = None
        self._engine.dispose()

    def _make_store(self, table: str) -> Any:
        from llama_index.vector_stores.postgres import PGVectorStore

        hnsw = (
            {
                "hnsw_m": 16,
                "hnsw_ef_construction": 64,
                "hnsw_ef_search": 100,
                "hnsw_dist_method": "vector_cosine_ops",
            }
            if self.hnsw
            else None
        )
        return PGVectorStore.from_params(
            connection_string=self.url,
            async_connection_string=_driver_url(self.url, "asyncpg"),
            table_name=table,
            embed_dim=self.embed_dim,
            hnsw_kwargs=hnsw,
        )


def open_adapter(
    config: StoreConfig, index_dir: Path | None = None, embed_dim: int = 384
) -> VectorStoreAdapter:
    """The adapter for ``config``; the embedded one is read from ``index_dir`` when given."""
    if config.kind == "pgvector":
        return PgVectorStoreAdapter.from_config(config, embed_dim=embed_dim)
    if index_dir is not None:
        return EmbeddedStoreAdapter.load(index_dir)
    return EmbeddedStoreAdapter()


def _driver_url(url: str, driver: str) -> str:
    """``url`` with its SQLAlchemy driver set to ``driver`` (``postgresql://`` -> ``postgresql+psycopg2://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise StoreConfigError(f"not a PostgreSQL URL: {scheme}://...")
    return f"postgresql+{driver}://{rest}"


def _dispose(store: Any) -> None:
    engine = getattr(store, "_engine", None)
    if engine is not None:
        engine.dispose()
