"""Building, versioning, incremental re-embedding and atomically publishing the knowledge index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge.cache import EmbeddingCache
from knowledge.documents import load_documents
from knowledge.index import (
    IndexBuildError,
    build_index,
    default_cache_path,
    read_chunks,
    read_manifest,
    split_sections,
)
from knowledge.stores import NumpyVectorStore

from .conftest import DOCS, CountingEmbedding, HashingEmbedding, write_docs


def test_split_sections_keeps_section_titles_and_drops_heading_lines() -> None:
    markdown = (
        "# Title\nIntro line.\n## First\nAlpha.\n### Detail\nBeta.\n"
        "```\n## not a heading inside code\n```\n## Empty\n\n## Second\nGamma.\n"
    )
    assert split_sections(markdown) == [
        ("", "Intro line."),
        ("First", "Alpha.\n### Detail\nBeta.\n```\n## not a heading inside code\n```"),
        ("Second", "Gamma."),
    ]


def test_build_persists_chunks_vectors_and_a_manifest(built, sources: Path) -> None:
    index_dir = sources.parent / "index"
    manifest = read_manifest(index_dir)
    assert manifest == built.manifest
    assert manifest["kb_version"] == built.kb_version
    assert manifest["embedding_model"] == "HashingEmbedding:hashing-bow-128"
    assert manifest["embedding_dim"] == 128
    assert manifest["vector_store"] == {"kind": "embedded"}
    assert (manifest["chunk_size"], manifest["chunk_overlap"]) == (256, 32)
    chunks = {doc["doc_id"]: doc["chunks"] for doc in manifest["documents"]}
    assert chunks == {"acme-refunds": 3, "acme-shipping": 2, "globex-refunds": 1}
    assert manifest["chunk_count"] == built.chunks == 6
    assert manifest["doc_count"] == built.documents == 3
    assert manifest["tenants"] == {"acme": 5, "globex": 1}
    assert (built.embedded, built.from_cache) == (6, 0)
    assert built.chunks_per_second > 0
    store = NumpyVectorStore.from_folder(index_dir)
    assert len(store) == 6


def test_every_chunk_keeps_tenant_document_and_section_metadata(built, sources: Path) -> None:
    chunks = read_chunks(sources.parent / "index")
    assert len(chunks) == 6
    for chunk in chunks:
        assert {"doc_id", "title", "tenant", "tags", "updated", "path", "section"} <= set(chunk.metadata)
        assert chunk.doc_id == chunk.metadata["doc_id"] and chunk.tenant == chunk.metadata["tenant"]
    sections = {(chunk.doc_id, chunk.section) for chunk in chunks}
    assert ("acme-refunds", "How refunds are paid") in sections
    assert ("globex-refunds", "Refund window") in sections
    assert {chunk.tenant for chunk in chunks if chunk.doc_id == "globex-refunds"} == {"globex"}


def test_small_chunks_split_sections_but_keep_their_metadata(
    sources: Path, embed_model: HashingEmbedding
) -> None:
    docs = load_documents(sources).documents
    long_text = " ".join(f"Sentence number {i} about refunds." for i in range(80))
    docs[0].set_content(docs[0].text + f"\n## Long section\n{long_text}\n")
    report = build_index(docs, sources.parent / "small", 64, 8, embed_model, show_progress=False)
    chunks = read_chunks(sources.parent / "small")
    long_chunks = [chunk for chunk in chunks if chunk.section == "Long section"]
    assert len(long_chunks) > 1
    assert report.chunks == len(chunks)
    assert all(chunk.tenant == "acme" for chunk in long_chunks)


def test_kb_version_follows_content_and_config(tmp_path: Path, embed_model: HashingEmbedding) -> None:
    def version(docs: dict[str, str], chunk_size: int = 256, name: str = "a") -> str:
        sources = write_docs(tmp_path / name, docs)
        return build_index(
            sources, tmp_path / name / "index", chunk_size, 32, embed_model, show_progress=False
        ).kb_version

    first = version(DOCS, name="a")
    assert version(DOCS, name="b") == first  # same content and config, different folder
    assert version(DOCS, chunk_size=128, name="c") != first
    edited = {**DOCS, "globex/refunds.md": DOCS["globex/refunds.md"].replace("14 days", "21 days")}
    assert version(edited, name="d") != first


def test_a_rebuild_embeds_only_changed_chunks_and_drops_deleted_ones(sources: Path) -> None:
    model = CountingEmbedding()
    index_dir = sources.parent / "index"
    first = build_index(sources, index_dir, 256, 32, model, show_progress=False)
    assert (first.embedded, first.from_cache) == (6, 0) and len(model.seen) == 6

    model.seen.clear()
    again = build_index(sources, index_dir, 256, 32, model, show_progress=False)
    assert (again.embedded, again.from_cache, model.seen) == (0, 6, [])

    refunds = sources.parent / "docs" / "acme" / "refunds.md"
    refunds.write_text(refunds.read_text().replace("within 5 business days", "within 3 business days"))
    changed = build_index(sources, index_dir, 256, 32, model, show_progress=False)
    assert changed.embedded == 1 and len(model.seen) == 1 and "within 3 business days" in model.seen[0]
    assert changed.kb_version != again.kb_version

    model.seen.clear()
    (sources.parent / "docs" / "acme" / "shipping.md").unlink()
    removed = build_index(sources, index_dir, 256, 32, model, show_progress=False)
    assert (removed.embedded, removed.chunks, model.seen) == (0, 4, [])
    assert {chunk.doc_id for chunk in read_chunks(index_dir)} == {"acme-refunds", "globex-refunds"}
    assert len(NumpyVectorStore.from_folder(index_dir)) == 4
    cache = EmbeddingCache(default_cache_path(index_dir))
    assert len(cache) == 4  # the deleted article's vectors left the cache too
    cache.close()


def test_identical_chunks_are_embedded_once(tmp_path: Path) -> None:
    same = "---\nid: {id}\ntitle: Same\n---\n## Part\nThe very same paragraph in two articles.\n"
    sources = write_docs(tmp_path, {"a.md": same.format(id="a"), "b.md": same.format(id="b")})
    model = CountingEmbedding()
    report = build_index(sources, tmp_path / "index", 256, 32, model, show_progress=False)
    assert report.chunks == 2 and report.embedded == 1 and len(model.seen) == 1


def test_a_corrupt_cache_is_rebuilt_not_fatal(sources: Path, embed_model: HashingEmbedding) -> None:
    cache = default_cache_path(sources.parent / "index")
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"this is not a database")
    report = build_index(sources, sources.parent / "index", 256, 32, embed_model, show_progress=False)
    assert report.embedded == 6


def test_without_a_cache_everything_is_embedded_every_time(sources: Path) -> None:
    model = CountingEmbedding()
    for _ in range(2):
        build_index(sources, sources.parent / "index", 256, 32, model, show_progress=False, cache_path=None)
    assert len(model.seen) == 12
    assert not default_cache_path(sources.parent / "index").exists()


def test_the_progress_bar_counts_embedded_chunks(
    sources: Path, embed_model: HashingEmbedding, capsys: pytest.CaptureFixture[str]
) -> None:
    build_index(sources, sources.parent / "index", 256, 32, embed_model, show_progress=True)
    err = capsys.readouterr().err
    assert "Embedding chunks" in err and "6/6" in err


class FailingEmbedding(HashingEmbedding):
    """Embeds the first batch, then fails: a build that dies half-way through."""

    calls: int = 0

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("embedding backend died")
        return [self._vector(text) for text in texts]


def test_a_failed_rebuild_leaves_the_previous_index_untouched(built, sources: Path) -> None:
    index_dir = sources.parent / "index"
    before = {path.name: path.read_bytes() for path in index_dir.iterdir()}
    write_docs(
        sources.parent,
        {"acme/new.md": "---\nid: acme-new\n---\n## New\nA new article.\n## More\nAnd more.\n"},
    )
    failing = FailingEmbedding()
    with pytest.raises(RuntimeError, match="embedding backend died"):
        build_index(sources, index_dir, 256, 32, failing, show_progress=False, batch_size=1, cache_path=None)
    assert failing.calls == 2
    assert {path.name: path.read_bytes() for path in index_dir.iterdir()} == before
    assert sorted(path.name for path in sources.parent.iterdir()) == [
        ".cache",
        "docs",
        "index",
        "sources.yml",
    ]


def test_a_failed_first_build_writes_nothing(sources: Path) -> None:
    with pytest.raises(RuntimeError):
        build_index(
            sources,
            sources.parent / "index",
            256,
            32,
            FailingEmbedding(),
            show_progress=False,
            batch_size=1,
            cache_path=None,
        )
    assert sorted(path.name for path in sources.parent.iterdir()) == ["docs", "sources.yml"]


def test_a_failing_finalize_step_publishes_nothing(
    built, sources: Path, embed_model: HashingEmbedding
) -> None:
    index_dir = sources.parent / "index"
    before = (index_dir / "manifest.json").read_text()

    def finalize(staging: Path) -> dict:
        assert (staging / "chunks.jsonl").is_file()
        raise ValueError("calibration failed")

    write_docs(sources.parent, {"acme/new.md": "---\nid: acme-new\n---\n## New\nA new article.\n"})
    with pytest.raises(ValueError, match="calibration failed"):
        build_index(sources, index_dir, 256, 32, embed_model, show_progress=False, finalize=finalize)
    assert (index_dir / "manifest.json").read_text() == before


def test_a_rebuild_replaces_the_index(built, sources: Path, embed_model: HashingEmbedding) -> None:
    write_docs(
        sources.parent, {"acme/new.md": "---\nid: acme-new\ntitle: New\n---\n## New\nA new article.\n"}
    )
    report = build_index(sources, sources.parent / "index", 256, 32, embed_model, show_progress=False)
    assert report.kb_version != built.kb_version
    assert "acme-new" in {doc["doc_id"] for doc in read_manifest(sources.parent / "index")["documents"]}
    assert sorted(path.name for path in sources.parent.iterdir()) == [
        ".cache",
        "docs",
        "index",
        "sources.yml",
    ]


def test_unreadable_and_empty_files_are_reported_by_name_and_skipped(
    sources: Path, embed_model: HashingEmbedding
) -> None:
    write_docs(
        sources.parent, {"acme/broken.md": "no front matter here\n", "acme/empty.md": "---\nid: e\n---\n\n"}
    )
    (sources.parent / "docs" / "acme" / "latin1.md").write_bytes(b"---\nid: l\n---\ncaf\xe9\n")
    report = build_index(sources, sources.parent / "index", 256, 32, embed_model, show_progress=False)
    skipped = {Path(item.path).name: item.reason for item in report.skipped}
    assert set(skipped) == {"broken.md", "empty.md", "latin1.md"}
    assert "empty document" in skipped["empty.md"] and "not UTF-8" in skipped["latin1.md"]
    manifest = json.loads((sources.parent / "index" / "manifest.json").read_text())
    assert {Path(item["path"]).name for item in manifest["skipped"]} == set(skipped)
    assert manifest["doc_count"] == 3


def test_nothing_to_index_is_an_error_and_writes_nothing(
    tmp_path: Path, embed_model: HashingEmbedding
) -> None:
    sources = write_docs(tmp_path, {"acme/broken.md": "no front matter here\n"})
    with pytest.raises(IndexBuildError, match="no usable"):
        build_index(sources, tmp_path / "index", 256, 32, embed_model, show_progress=False)
    assert not (tmp_path / "index").exists()


LONG_LIST = (
    """\
---
id: acme-statuses
title: Order statuses
---
# Order statuses
## Statuses
Your order shows one of these statuses:
"""
    + "".join(
        f"- **Status {i}:** the order is in step number {i} of its long journey to your door, handled with care.\n"
        for i in range(1, 25)
    )
    + """
| Status | Meaning |
|---|---|
"""
    + "".join(
        f"| Code {i} | The parcel waits at depot number {i} for the next truck to leave. |\n"
        for i in range(1, 25)
    )
)


def test_chunks_hold_whole_blocks_and_cut_a_long_list_or_table_between_items(
    tmp_path: Path, embed_model: HashingEmbedding
) -> None:
    sources = write_docs(tmp_path, {"acme/statuses.md": LONG_LIST})
    build_index(sources, tmp_path / "index", 128, 16, embed_model, show_progress=False)
    texts = [chunk.text for chunk in read_chunks(tmp_path / "index")]
    assert len(texts) > 4
    for i in range(1, 25):  # every item and row whole, in exactly one chunk
        item = f"- **Status {i}:** the order is in step number {i} of its long journey to your door, handled with care."
        row = f"| Code {i} | The parcel waits at depot number {i} for the next truck to leave. |"
        assert sum(item in text.splitlines() for text in texts) == 1
        assert sum(row in text.splitlines() for text in texts) == 1
    for text in texts:  # no chunk starts in the middle of a list or table: its lead or header comes first
        first = text.splitlines()[0]
        assert first.startswith(("Your order shows one of these statuses", "| Status | Meaning |")), first
        if first.startswith("|"):
            assert text.splitlines()[1] == "|---|---|"
    assert texts[0].startswith("Your order shows one of these statuses:\n")
    assert any(text.startswith("Your order shows one of these statuses (continued):\n") for text in texts)
    assert not any(text.rstrip().endswith(":") for text in texts)  # a lead is never left at a chunk's end
