"""Building, versioning and atomically publishing the knowledge index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llama_index.core import StorageContext, load_index_from_storage

from knowledge.documents import load_documents
from knowledge.index import INDEX_ID, IndexBuildError, build_index, read_manifest, split_sections

from .conftest import DOCS, HashingEmbedding, write_docs


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


def test_build_persists_an_index_and_a_manifest(built, sources: Path) -> None:
    index_dir = sources.parent / "index"
    manifest = read_manifest(index_dir)
    assert manifest == built.manifest
    assert manifest["kb_version"] == built.kb_version
    assert manifest["embedding_model"] == "HashingEmbedding:hashing-bow-128"
    assert manifest["embedding_dim"] == 128
    assert (manifest["chunk_size"], manifest["chunk_overlap"]) == (256, 32)
    chunks = {doc["doc_id"]: doc["chunks"] for doc in manifest["documents"]}
    assert chunks == {"acme-refunds": 3, "acme-shipping": 2, "globex-refunds": 1}
    assert manifest["chunk_count"] == built.chunks == 6
    assert manifest["doc_count"] == built.documents == 3
    assert manifest["tenants"] == {"acme": 5, "globex": 1}
    assert built.chunks_per_second > 0


def test_every_chunk_keeps_tenant_document_and_section_metadata(built, sources: Path) -> None:
    storage = StorageContext.from_defaults(persist_dir=str(sources.parent / "index"))
    index = load_index_from_storage(storage, index_id=INDEX_ID, embed_model=HashingEmbedding())
    nodes = list(index.docstore.docs.values())
    assert len(nodes) == 6
    for node in nodes:
        assert {"doc_id", "title", "tenant", "tags", "updated", "path", "section"} <= set(node.metadata)
        assert node.ref_doc_id == node.metadata["doc_id"]
    sections = {(node.metadata["doc_id"], node.metadata["section"]) for node in nodes}
    assert ("acme-refunds", "How refunds are paid") in sections
    assert ("globex-refunds", "Refund window") in sections
    assert {node.metadata["tenant"] for node in nodes if node.metadata["doc_id"] == "globex-refunds"} == {
        "globex"
    }


def test_small_chunks_split_sections_but_keep_their_metadata(
    sources: Path, embed_model: HashingEmbedding
) -> None:
    docs = load_documents(sources).documents
    long_text = " ".join(f"Sentence number {i} about refunds." for i in range(80))
    docs[0].set_content(docs[0].text + f"\n## Long section\n{long_text}\n")
    report = build_index(
        docs,
        sources.parent / "small",
        chunk_size=64,
        chunk_overlap=8,
        embed_model=embed_model,
        show_progress=False,
    )
    storage = StorageContext.from_defaults(persist_dir=str(sources.parent / "small"))
    nodes = load_index_from_storage(
        storage, index_id=INDEX_ID, embed_model=embed_model
    ).docstore.docs.values()
    long_chunks = [node for node in nodes if node.metadata["section"] == "Long section"]
    assert len(long_chunks) > 1
    assert report.chunks == len(nodes)
    assert all(node.metadata["tenant"] == "acme" for node in long_chunks)


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
    write_docs(sources.parent, {"acme/new.md": "---\nid: acme-new\n---\n## New\nA new article.\n"})
    failing = FailingEmbedding(embed_batch_size=1)
    with pytest.raises(RuntimeError, match="embedding backend died"):
        build_index(sources, index_dir, 256, 32, failing, show_progress=False)
    assert failing.calls == 2
    assert {path.name: path.read_bytes() for path in index_dir.iterdir()} == before
    assert sorted(path.name for path in sources.parent.iterdir()) == ["docs", "index", "sources.yml"]


def test_a_failed_first_build_writes_nothing(sources: Path) -> None:
    with pytest.raises(RuntimeError):
        build_index(
            sources,
            sources.parent / "index",
            256,
            32,
            FailingEmbedding(embed_batch_size=1),
            show_progress=False,
        )
    assert sorted(path.name for path in sources.parent.iterdir()) == ["docs", "sources.yml"]


def test_a_rebuild_replaces_the_index(built, sources: Path, embed_model: HashingEmbedding) -> None:
    write_docs(
        sources.parent, {"acme/new.md": "---\nid: acme-new\ntitle: New\n---\n## New\nA new article.\n"}
    )
    report = build_index(sources, sources.parent / "index", 256, 32, embed_model, show_progress=False)
    assert report.kb_version != built.kb_version
    assert "acme-new" in {doc["doc_id"] for doc in read_manifest(sources.parent / "index")["documents"]}
    assert sorted(path.name for path in sources.parent.iterdir()) == ["docs", "index", "sources.yml"]


def test_skipped_files_are_reported_by_name(sources: Path, embed_model: HashingEmbedding) -> None:
    write_docs(sources.parent, {"acme/broken.md": "no front matter here\n"})
    report = build_index(sources, sources.parent / "index", 256, 32, embed_model, show_progress=False)
    assert [Path(item.path).name for item in report.skipped] == ["broken.md"]
    manifest = json.loads((sources.parent / "index" / "manifest.json").read_text())
    assert [Path(item["path"]).name for item in manifest["skipped"]] == ["broken.md"]
    assert manifest["doc_count"] == 3


def test_nothing_to_index_is_an_error_and_writes_nothing(
    tmp_path: Path, embed_model: HashingEmbedding
) -> None:
    sources = write_docs(tmp_path, {"acme/broken.md": "no front matter here\n"})
    with pytest.raises(IndexBuildError, match="no usable"):
        build_index(sources, tmp_path / "index", 256, 32, embed_model, show_progress=False)
    assert not (tmp_path / "index").exists()
