"""A persistent embedding cache: chunk text + model name -> vector, in one SQLite file next to the index.

This is what makes ingestion incremental: a rebuild re-chunks every document (cheap) but embeds only the
chunks whose embedded text (content plus the metadata that is embedded, such as the title and section)
is not in the cache for this model. After a successful build the cache is pruned to the chunks of that
build, so a deleted article's vectors leave the cache as well as the index. SQLite gives atomic,
crash-safe writes; a corrupt or unreadable cache file is discarded and rebuilt, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS embeddings (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vector BLOB NOT NULL)"
)


def cache_key(model_name: str, text: str) -> str:
    """The cache key of ``text`` embedded by ``model_name`` (a SHA-256 hex digest)."""
    return hashlib.sha256(f"{model_name}\x00{text}".encode()).hexdigest()


class EmbeddingCache:
    """Vectors by :func:`cache_key`, stored as float32 blobs in SQLite."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:  # not a database, or corrupt: start afresh
            logger.warning("discarding unreadable embedding cache %s: %s", self.path, exc)
            self.path.unlink(missing_ok=True)
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        conn.execute(_SCHEMA)
        conn.execute("SELECT count(*) FROM embeddings").fetchone()
        return conn

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM embeddings").fetchone()[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys``."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            rows = self._conn.execute(
                f"SELECT key, vector FROM embeddings WHERE key IN ({','.join('?' * len(part))})", part
            )
            found.update({key: np.frombuffer(blob, dtype=np.float32) for key, blob in rows})
        return found

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Store vectors (one transaction)."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings (key, dim, vector) VALUES (?, ?, ?)",
                [
                    (key, int(np.asarray(v).size), np.asarray(v, dtype=np.float32).tobytes())
                    for key, v in vectors.items()
                ],
            )

    def prune(self, keep: Iterable[str]) -> int:
        """Delete every entry not in ``keep``; return how many were deleted."""
        keep_set = set(keep)
        stale = [key for (key,) in self._conn.execute("SELECT key FROM embeddings") if key not in keep_set]
        with self._conn:
            self._conn.executemany("DELETE FROM embeddings WHERE key = ?", [(key,) for key in stale])
        return len(stale)

    def close(self) -> None:
        self._conn.close()
