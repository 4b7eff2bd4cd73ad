"""Build the knowledge index: documents -> ``##`` sections -> chunks -> embeddings -> on-disk vector index.

The index is built in a fresh hidden sibling folder and only then swapped into place, so a reader
(or DVC) sees either the previous complete index or the new complete one, never a half-written one;
a build that fails leaves the previous index untouched. Next to the llama-index storage files the
folder holds ``manifest.json``: document ids, chunk counts, the embedding model, build figures and
``kb_version``, a hash of the content and the chunking/embedding configuration that callers use to
invalidate anything cached from an older knowledge base.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import NodeParser, SentenceSplitter
from llama_index.core.node_parser.node_utils import build_nodes_from_splits
from llama_index.core.schema import BaseNode, MetadataMode, TransformComponent
from llama_index.core.utils import get_tqdm_iterable

from knowledge.documents import LoadResult, SkippedFile, load_documents
from knowledge.embeddings import configure_llama_index, embed_model_name

#: Version of the chunking scheme; part of ``kb_version`` so a change of scheme invalidates caches.
INDEX_FORMAT = 1
MANIFEST_FILE = "manifest.json"
INDEX_ID = "knowledge"
REQUIRED_METADATA = ("doc_id", "title", "tenant")


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


class EmbeddingStep(TransformComponent):
    """The pipeline's embedding transformation, with a per-chunk progress bar when asked for.

    (``IngestionPipeline.run(show_progress=True)`` only shows one bar over its transformations.)
    """

    embed_model: BaseEmbedding
    show_progress: bool = False

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        return self.embed_model(nodes, show_progress=self.show_progress, **kwargs)


def _section_id(position: int, node: BaseNode) -> str:
    return f"{node.node_id}#s{position}"


def _chunk_id(position: int, node: BaseNode) -> str:
    return f"{node.node_id}c{position}"


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

    @property
    def chunks_per_second(self) -> float:
        """Build throughput (chunks embedded and stored per second)."""
        return self.chunks / self.seconds if self.seconds > 0 else 0.0


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


def build_index(
    docs_or_sources: Path | str | LoadResult | Sequence[Document],
    out_dir: Path | str,
    chunk_size: int,
    chunk_overlap: int,
    embed_model: BaseEmbedding,
    *,
    default_tenant: str = "acme",
    show_progress: bool = True,
) -> BuildReport:
    """Chunk, embed and persist the documents (or the files ``sources.yml`` names) as ``out_dir``.

    ``docs_or_sources`` is the path of a ``sources.yml``, what :func:`load_documents` made of one
    (its skipped files are then reported too), or ready ``Document`` objects carrying at least
    ``doc_id``, ``title`` and ``tenant`` metadata. Raises :class:`IndexBuildError` when there is
    nothing usable to index (and ``SourcesError`` for a broken ``sources.yml``); any failure leaves a
    previous index at ``out_dir`` as it was.
    """
    out_dir = Path(out_dir)
    if isinstance(docs_or_sources, str | Path):
        docs_or_sources = load_documents(Path(docs_or_sources), default_tenant=default_tenant)
    if isinstance(docs_or_sources, LoadResult):
        documents, skipped = list(docs_or_sources.documents), list(docs_or_sources.skipped)
    else:
        documents, skipped = list(docs_or_sources), []
    _check_documents(documents)

    configure_llama_index(embed_model)
    config = {
        "format": INDEX_FORMAT,
        "chunk_size": chunk_size,
        "chunk_overlap": chunk_overlap,
        "embedding_model": embed_model_name(embed_model),
    }
    version = kb_version(documents, config)
    started = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.building-{uuid.uuid4().hex[:8]}")
    try:
        pipeline = IngestionPipeline(
            transformations=[
                MarkdownSectionParser(),
                SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap, id_func=_chunk_id),
                EmbeddingStep(embed_model=embed_model, show_progress=show_progress),
            ],
            disable_cache=True,
        )
        nodes = pipeline.run(documents=documents)
        index = VectorStoreIndex(
            nodes=nodes, storage_context=StorageContext.from_defaults(), embed_model=embed_model
        )
        index.set_index_id(INDEX_ID)
        index.storage_context.persist(persist_dir=str(staging))
        seconds = time.perf_counter() - started
        manifest = _manifest(documents, nodes, skipped, config, version, seconds)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BuildReport(
        out_dir=out_dir,
        kb_version=version,
        documents=len(documents),
        chunks=len(nodes),
        seconds=seconds,
        manifest=manifest,
        skipped=skipped,
    )


def read_manifest(index_dir: Path | str) -> dict[str, Any]:
    """The ``manifest.json`` of a built index (``FileNotFoundError`` when there is no index there)."""
    path = Path(index_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no knowledge index at {index_dir} (missing {MANIFEST_FILE})")
    return json.loads(path.read_text())


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
