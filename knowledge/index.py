"""Build the knowledge index: documents -> ``##`` sections -> chunks -> embeddings -> vector store + files.

The chunking and embedding run as one llama-index ``IngestionPipeline`` (section parser, block splitter,
cached embedding step). The block splitter (:class:`BlockSplitter`) keeps the article structure: a chunk
holds whole paragraphs, lists and tables (:mod:`knowledge.passages`); a list or table too long for one chunk
is cut between items, its lead sentence (marked "continued") and table header repeated at the top of the
next chunk; only a paragraph longer than a chunk is cut between sentences. Ingestion is incremental and deduplicated: a chunk whose embedded text
is already in the :class:`~knowledge.cache.EmbeddingCache` (kept next to the index) for this model is not
embedded again, identical chunks are embedded once, and after a successful build the cache holds exactly
the chunks of that build, so changing one article re-embeds only its chunks and deleting one removes them.

The index is built in a fresh hidden sibling folder and only then swapped into place, so a reader (or
DVC) sees either the previous complete index or the new complete one, never a half-written one; a build
that fails leaves the previous index untouched. The folder holds:

- ``manifest.json``: document ids, chunk counts, the embedding model, the vector store, build figures and
  ``kb_version`` (a hash of the content and the chunking/embedding configuration);
- ``chunks.jsonl``: every chunk's id, text and metadata (tenant, document, title, section...), read by the
  BM25 retriever and the answerers;
- ``vectors.npy`` + ``vector_ids.json``: the embedded vector store (with the pgvector store the vectors
  live in PostgreSQL instead, see :mod:`knowledge.stores`);
- optionally ``answerability.json``: the fitted "is there an answer?" model (see :mod:`knowledge.confidence`),
  ``passage_ranker.json``: the fitted passage ranker (:mod:`knowledge.rerank`), and ``passages.npz``: the
  embedded blocks, headings and lines of every chunk, which the extractive answer quotes from
  (:mod:`knowledge.extractive`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core import Document
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import NodeParser, SentenceSplitter
from llama_index.core.node_parser.interface import MetadataAwareTextSplitter
from llama_index.core.node_parser.node_utils import build_nodes_from_splits
from llama_index.core.schema import BaseNode, MetadataMode, TransformComponent
from llama_index.core.utils import get_tokenizer, get_tqdm_iterable
from pydantic import ConfigDict, Field, PrivateAttr

from knowledge.cache import EmbeddingCache, cache_key
from knowledge.documents import LoadResult, SkippedFile, load_documents
from knowledge.embeddings import configure_llama_index, embed_backend, embed_model_name
from knowledge.passages import LIST, TABLE, Segment, lead_continued, segments, split_sentences, units
from knowledge.stores import StoreConfig, VectorStoreAdapter, open_adapter

logger = logging.getLogger(__name__)

#: Version of the chunking scheme and index layout; part of ``kb_version`` (3: chunks of whole blocks).
INDEX_FORMAT = 3
#: Index formats :class:`~knowledge.retrieval.KnowledgeBase` can open (2: sentence-split chunks, same layout).
READABLE_FORMATS = (2, 3)
MANIFEST_FILE = "manifest.json"
CHUNKS_FILE = "chunks.jsonl"
REQUIRED_METADATA = ("doc_id", "title", "tenant")
#: Chunks embedded per model call.
DEFAULT_BATCH_SIZE = 32


class IndexBuildError(ValueError):
    """The documents cannot make an index: none at all, duplicate ids or missing metadata."""


_HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<text>.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def split_sections(markdown: str) -> list[tuple[str, str]]:
    """Split Markdown at its ``##`` headings into ``(section title, text)`` pairs.

    The text before the first ``##`` is the section ``""``; the ``#`` title line and the ``##``
    heading lines themselves are dropped (they live in the metadata), deeper headings stay in the
    text, headings inside code fences are ignored, and sections without text are left out.
    """
    sections: list[tuple[str, list[str]]] = [("", [])]
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading and len(heading.group("hashes")) == 2:
            sections.append((heading.group("text").strip(), []))
        elif not (heading and len(heading.group("hashes")) == 1):
            sections[-1][1].append(line)
    return [(title, "\n".join(lines).strip()) for title, lines in sections if "\n".join(lines).strip()]


class MarkdownSectionParser(NodeParser):
    """Turn each Markdown document into one node per ``##`` section, with the title in ``section``."""

    def _parse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        parsed: list[BaseNode] = []
        for node in get_tqdm_iterable(nodes, show_progress, "Splitting sections"):
            sections = split_sections(node.get_content(metadata_mode=MetadataMode.NONE))
            pieces = build_nodes_from_splits([text for _, text in sections], node, id_func=_section_id)
            for piece, (title, _) in zip(pieces, sections, strict=True):
                piece.metadata["section"] = title
            parsed.extend(pieces)
        return parsed


class BlockSplitter(MetadataAwareTextSplitter):
    """Cut each section into chunks of at most ``chunk_size`` tokens (its metadata included) of whole blocks.

    Blocks are packed in reading order; a lead paragraph stays with the list, table or paragraph it introduces
    (:func:`knowledge.passages.units`). A list or table too long for one chunk is cut between items, and the
    next chunk starts with its lead sentence (marked "continued"), table header and ``###`` heading again, so
    every chunk reads on its own. Only a paragraph longer than a chunk is cut, between sentences (llama-index's
    ``SentenceSplitter``, with ``chunk_overlap``).
    """

    chunk_size: int = Field(gt=0)
    chunk_overlap: int = Field(ge=0)

    def split_text_metadata_aware(self, text: str, metadata_str: str) -> list[str]:
        budget = self.chunk_size - len(get_tokenizer()(metadata_str))
        if budget <= 0:
            raise ValueError(
                f"metadata ({metadata_str[:60]!r}...) is longer than the chunk size {self.chunk_size}"
            )
        return self._pack(text, budget)

    def split_text(self, text: str) -> list[str]:
        return self._pack(text, self.chunk_size)

    def _pack(self, markdown: str, budget: int) -> list[str]:
        tokens = get_tokenizer()
        if len(tokens(markdown)) <= budget:  # the whole section, exactly as written
            return [markdown.strip()] if markdown.strip() else []
        chunks: list[str] = []
        current: list[str] = []
        for group in units(segments(markdown)):
            text = _joined(group)
            pieces = [text] if len(tokens(text)) <= budget else self._cut(group, budget)
            for piece in pieces:
                if current and len(tokens("\n\n".join([*current, piece]))) > budget:
                    chunks.append("\n\n".join(current))
                    current = []
                if not current and group[0].heading and not piece.startswith(group[0].heading):
                    piece = f"{group[0].heading}\n\n{piece}"  # a chunk opening mid-heading repeats it
                current.append(piece)
        if current:
            chunks.append("\n\n".join(current))
        return chunks

    def _cut(self, group: list[Segment], budget: int) -> list[str]:
        """A group too long for one chunk, cut between list items or table rows (else between sentences)."""
        tokens = get_tokenizer()
        last = group[-1]
        if last.kind not in (LIST, TABLE) or len(last.items) < 2:
            text = _joined(group)
            overlap = min(self.chunk_overlap, budget // 2)
            return SentenceSplitter(chunk_size=budget, chunk_overlap=overlap).split_text(text)
        lead = "\n\n".join(segment.markdown() for segment in group[:-1])
        sentences = split_sentences(" ".join(line for segment in group[:-1] for line in segment.head))
        again = lead_continued(sentences[-1]) if sentences else ""

        def piece(head: str, items: list[list[str]]) -> str:
            return "\n".join(filter(None, [head, last.markdown(items)]))

        pieces: list[str] = []
        items: list[list[str]] = []
        for item in last.items:
            head = again if pieces else lead
            if items and len(tokens(piece(head, [*items, item]))) > budget:
                pieces.append(piece(head, items))
                items = []
            items.append(item)
        pieces.append(piece(again if pieces else lead, items))
        return pieces


def _joined(group: Sequence[Segment]) -> str:
    """A lead paragraph and its segment as Markdown: a list or table right below its lead, a paragraph after
    a blank line."""
    text = group[0].markdown()
    for segment in group[1:]:
        text += ("\n" if segment.kind in (LIST, TABLE) else "\n\n") + segment.markdown()
    return text


class CachedEmbedding(TransformComponent):
    """The pipeline's embedding step: vectors from the cache where possible, the model for the rest.

    Texts to embed are deduplicated and sorted by length (less padding per batch), embedded in batches
    of ``batch_size`` with a per-chunk progress bar, and written back to the cache. ``stats`` tells how
    many chunks were embedded and how many came from the cache.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    embed_model: BaseEmbedding
    model_name: str
    batch_size: int = DEFAULT_BATCH_SIZE
    show_progress: bool = False

    _cache: EmbeddingCache | None = PrivateAttr(default=None)
    _stats: dict[str, int] = PrivateAttr(default_factory=dict)
    _seconds: float = PrivateAttr(default=0.0)
    _keys: list[str] = PrivateAttr(default_factory=list)

    def with_cache(self, cache: EmbeddingCache | None) -> CachedEmbedding:
        self._cache = cache
        return self

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    @property
    def seconds(self) -> float:
        """Time spent in the embedding model during the last run."""
        return self._seconds

    @property
    def keys(self) -> list[str]:
        """Cache keys of the chunks of the last run."""
        return list(self._keys)

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
        keys = [cache_key(self.model_name, text) for text in texts]
        known = self._cache.get_many(keys) if self._cache is not None else {}
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in known}
        order = sorted(missing, key=lambda key: len(missing[key]))
        fresh: dict[str, np.ndarray] = {}
        started = time.perf_counter()
        progress = _progress(len(order), "Embedding chunks", self.show_progress)
        try:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                vectors = self.embed_model.get_text_embedding_batch([missing[key] for key in batch])
                fresh.update(
                    {key: np.asarray(v, dtype=np.float32) for key, v in zip(batch, vectors, strict=True)}
                )
                progress.update(len(batch))
        finally:
            progress.close()
        self._seconds = time.perf_counter() - started
        if self._cache is not None and fresh:
            self._cache.put_many(fresh)
        vectors_by_key = {**known, **fresh}
        for node, key in zip(nodes, keys, strict=True):
            node.embedding = vectors_by_key[key].astype(float).tolist()
        self._keys = keys
        self._stats = {"embedded": len(fresh), "from_cache": len(nodes) - len(fresh)}
        return nodes


def _progress(total: int, desc: str, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", disable=not show or total == 0)


def _section_id(position: int, node: BaseNode) -> str:
    return f"{node.node_id}#s{position}"


def _chunk_id(position: int, node: BaseNode) -> str:
    return f"{node.node_id}c{position}"


@dataclass(frozen=True)
class Chunk:
    """One indexed chunk as stored in ``chunks.jsonl``."""

    id: str
    doc_id: str
    tenant: str
    title: str
    section: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_node(cls, node: BaseNode) -> Chunk:
        meta = node.metadata
        return cls(
            id=node.node_id,
            doc_id=str(meta.get("doc_id") or node.ref_doc_id),
            tenant=str(meta.get("tenant", "")),
            title=str(meta.get("title", "")),
            section=str(meta.get("section", "")),
            text=node.get_content(metadata_mode=MetadataMode.NONE),
            metadata=dict(meta),
        )

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False, sort_keys=True, default=str)


def read_chunks(index_dir: Path | str) -> list[Chunk]:
    """The chunks of a built index, in index order."""
    path = Path(index_dir) / CHUNKS_FILE
    with path.open(encoding="utf-8") as handle:
        return [Chunk(**json.loads(line)) for line in handle if line.strip()]


@dataclass
class BuildReport:
    """What a build produced: where, which version, how big, how fast, and which files it skipped."""

    out_dir: Path
    kb_version: str
    documents: int
    chunks: int
    seconds: float
    manifest: dict[str, Any]
    skipped: list[SkippedFile] = field(default_factory=list)
    embedded: int = 0
    from_cache: int = 0
    embed_seconds: float = 0.0

    @property
    def chunks_per_second(self) -> float:
        """Build throughput (chunks chunked, embedded or fetched, and stored per second)."""
        return self.chunks / self.seconds if self.seconds > 0 else 0.0

    @property
    def embedded_per_second(self) -> float:
        """Embedding throughput: chunks the model embedded per second of embedding (0 if none)."""
        return self.embedded / self.embed_seconds if self.embedded and self.embed_seconds > 0 else 0.0


def kb_version(documents: Sequence[Document], config: dict[str, Any]) -> str:
    """A short hash of every document (id, text, metadata except its file path) and the build config.

    The path is left out so the same content checked out elsewhere has the same version.
    """
    contents = sorted(
        [doc.id_, doc.text, {key: value for key, value in doc.metadata.items() if key != "path"}]
        for doc in documents
    )
    payload = json.dumps({"config": config, "documents": contents}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def default_cache_path(out_dir: Path) -> Path:
    """``<parent>/.cache/<index name>-embeddings.sqlite``: next to the index, outside its folder."""
    return out_dir.parent / ".cache" / f"{out_dir.name}-embeddings.sqlite"


def chunk_nodes(
    documents: Sequence[Document],
    chunk_size: int,
    chunk_overlap: int,
    embedding: CachedEmbedding | None = None,
) -> list[BaseNode]:
    """Run the ingestion pipeline: sections, chunks of whole blocks, and (when given) the embedding step."""
    transformations: list[TransformComponent] = [
        MarkdownSectionParser(),
        BlockSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap, id_func=_chunk_id),
    ]
    if embedding is not None:
        transformations.append(embedding)
    return list(
        IngestionPipeline(transformations=transformations, disable_cache=True).run(documents=documents)
    )


def build_index(
    docs_or_sources: Path | str | LoadResult | Sequence[Document],
    out_dir: Path | str,
    chunk_size: int,
    chunk_overlap: int,
    embed_model: BaseEmbedding,
    *,
    default_tenant: str = "acme",
    show_progress: bool = True,
    store: StoreConfig | None = None,
    cache_path: Path | str | None | bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    finalize: Callable[[Path], dict[str, Any]] | None = None,
) -> BuildReport:
    """Chunk, embed and persist the documents (or the files ``sources.yml`` names) as ``out_dir``.

    ``docs_or_sources`` is the path of a ``sources.yml``, what :func:`load_documents` made of one
    (its skipped files are then reported too), or ready ``Document`` objects carrying at least
    ``doc_id``, ``title`` and ``tenant`` metadata. ``store`` picks the vector store (default: the
    embedded one); ``cache_path`` is the embedding cache (``True``: :func:`default_cache_path`,
    ``None``/``False``: no cache). ``finalize`` is called with the finished staging folder before it is
    published (e.g. to fit the answerability model) and returns extra manifest entries.

    Raises :class:`IndexBuildError` when there is nothing usable to index (and ``SourcesError`` for a
    broken ``sources.yml``); any failure leaves a previous index at ``out_dir`` as it was.
    """
    out_dir = Path(out_dir)
    if isinstance(docs_or_sources, str | Path):
        docs_or_sources = load_documents(Path(docs_or_sources), default_tenant=default_tenant)
    if isinstance(docs_or_sources, LoadResult):
        documents, skipped = list(docs_or_sources.documents), list(docs_or_sources.skipped)
    else:
        documents, skipped = list(docs_or_sources), []
    _check_documents(documents)
    store = store or StoreConfig()

    configure_llama_index(embed_model)
    model_name = embed_model_name(embed_model)
    config = {
        "format": INDEX_FORMAT,
        "chunk_size": chunk_size,
        "chunk_overlap": chunk_overlap,
        "embedding_model": model_name,
    }
    version = kb_version(documents, config)
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.building-{uuid.uuid4().hex[:8]}")
    cache = _open_cache(out_dir, cache_path)
    embedding = CachedEmbedding(
        embed_model=embed_model, model_name=model_name, batch_size=batch_size, show_progress=show_progress
    ).with_cache(cache)
    adapter: VectorStoreAdapter | None = None
    try:
        nodes = chunk_nodes(documents, chunk_size, chunk_overlap, embedding=embedding)
        staging.mkdir(parents=True)
        with (staging / CHUNKS_FILE).open("w", encoding="utf-8") as handle:
            handle.writelines(Chunk.from_node(node).to_json() + "\n" for node in nodes)
        adapter = open_adapter(store, embed_dim=len(nodes[0].get_embedding()))
        adapter.publish(nodes, staging)
        seconds = time.perf_counter() - started
        manifest = _manifest(documents, nodes, skipped, config, version, seconds)
        manifest |= {
            "vector_store": store.describe(),
            "embedding_backend": embed_backend(embed_model),
            "embedded_chunks": embedding.stats["embedded"],
            "cached_chunks": embedding.stats["from_cache"],
        }
        _write_manifest(staging, manifest)
        if finalize is not None:
            manifest |= finalize(staging)
            _write_manifest(staging, manifest)
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if adapter is not None:
            adapter.close()
    if cache is not None:
        cache.prune(embedding.keys)
        cache.close()
    return BuildReport(
        out_dir=out_dir,
        kb_version=version,
        documents=len(documents),
        chunks=len(nodes),
        seconds=seconds,
        manifest=manifest,
        skipped=skipped,
        embedded=embedding.stats["embedded"],
        from_cache=embedding.stats["from_cache"],
        embed_seconds=embedding.seconds,
    )


def read_manifest(index_dir: Path | str) -> dict[str, Any]:
    """The ``manifest.json`` of a built index (``FileNotFoundError`` when there is no index there)."""
    path = Path(index_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no knowledge index at {index_dir} (missing {MANIFEST_FILE})")
    return json.loads(path.read_text())


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _open_cache(out_dir: Path, cache_path: Path | str | None | bool) -> EmbeddingCache | None:
    if cache_path is None or cache_path is False:
        return None
    path = default_cache_path(out_dir) if cache_path is True else Path(cache_path)
    return EmbeddingCache(path)


def _check_documents(documents: Sequence[Document]) -> None:
    if not documents:
        raise IndexBuildError("no usable knowledge documents to index")
    ids = Counter(doc.id_ for doc in documents)
    duplicates = sorted(doc_id for doc_id, count in ids.items() if count > 1)
    if duplicates:
        raise IndexBuildError(f"duplicate document ids: {', '.join(duplicates)}")
    for doc in documents:
        missing = [key for key in REQUIRED_METADATA if not doc.metadata.get(key)]
        if missing:
            raise IndexBuildError(f"document {doc.id_!r} lacks metadata: {', '.join(missing)}")


def _manifest(
    documents: Sequence[Document],
    nodes: Sequence[BaseNode],
    skipped: Sequence[SkippedFile],
    config: dict[str, Any],
    version: str,
    seconds: float,
) -> dict[str, Any]:
    chunks_per_doc = Counter(node.ref_doc_id for node in nodes)
    return {
        "kb_version": version,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 3),
        "chunks_per_second": round(len(nodes) / seconds, 2) if seconds > 0 else 0.0,
        **config,
        "embedding_dim": len(nodes[0].get_embedding()) if nodes else 0,
        "doc_count": len(documents),
        "chunk_count": len(nodes),
        "tenants": dict(sorted(Counter(node.metadata["tenant"] for node in nodes).items())),
        "documents": [
            {
                "doc_id": doc.id_,
                "title": doc.metadata["title"],
                "tenant": doc.metadata["tenant"],
                "path": doc.metadata.get("path", ""),
                "updated": doc.metadata.get("updated", ""),
                "chunks": chunks_per_doc.get(doc.id_, 0),
            }
            for doc in sorted(documents, key=lambda doc: doc.id_)
        ],
        "skipped": [{"path": item.path, "reason": item.reason} for item in skipped],
    }


def _publish(staging: Path, out_dir: Path) -> None:
    """Put the finished ``staging`` folder at ``out_dir``, restoring the old index if that fails.

    Two renames on the same filesystem: the old index is moved aside, the new one moved in, and only
    then is the old one deleted. Each rename is atomic, so ``out_dir`` is never a partial index.
    """
    retired = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}") if out_dir.exists() else None
    if retired is not None:
        os.replace(out_dir, retired)
    try:
        os.replace(staging, out_dir)
    except OSError:
        if retired is not None:
            os.replace(retired, out_dir)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
