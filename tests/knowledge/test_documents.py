"""Reading sources.yml and Markdown knowledge files into llama-index documents."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from knowledge.documents import (
    DocumentError,
    SourcesError,
    document_from_markdown,
    load_documents,
    load_sources,
    parse_markdown,
)

from .conftest import DOCS, write_docs


def test_parse_markdown_splits_front_matter_from_body() -> None:
    meta, body = parse_markdown("---\nid: a\ntitle: A\n---\n# A\n## S\ntext\n")
    assert meta == {"id": "a", "title": "A"}
    assert body == "# A\n## S\ntext\n"


def test_documents_carry_the_metadata_every_chunk_needs(sources: Path) -> None:
    result = load_documents(sources, default_tenant="acme")
    assert result.skipped == []
    by_id = {doc.id_: doc for doc in result.documents}
    assert sorted(by_id) == ["acme-refunds", "acme-shipping", "globex-refunds"]
    refunds = by_id["acme-refunds"].metadata
    assert refunds["doc_id"] == "acme-refunds"
    assert refunds["title"] == "Refund policy"
    assert refunds["tenant"] == "acme"
    assert refunds["tags"] == ["billing", "refunds"]
    assert refunds["updated"] == "2025-01-31"  # a YAML date becomes an ISO string
    assert refunds["path"].endswith("docs/acme/refunds.md")
    assert by_id["acme-shipping"].metadata["tenant"] == "acme"  # no tenant in the front matter: default
    assert by_id["globex-refunds"].metadata["tenant"] == "globex"
    assert "Any customer can ask for a refund" in by_id["acme-refunds"].text


def test_title_falls_back_to_the_markdown_heading() -> None:
    doc = document_from_markdown("---\nid: x\n---\n# The heading\ntext\n", path="x.md", default_tenant="t")
    assert doc.metadata["title"] == "The heading"
    assert doc.metadata["tenant"] == "t"
    assert doc.metadata["tags"] == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("# no front matter\ntext\n", "no YAML front matter"),
        ("---\nid: [unclosed\n---\ntext\n", "invalid YAML front matter"),
        ("---\n- a list\n---\ntext\n", "not a mapping"),
        ("---\nid: x\n---\n   \n", "empty document"),
        ("---\ntitle: no id\n---\ntext\n", "'id'"),
        ("---\nid: x\ntags: {a: b}\n---\ntext\n", "'tags'"),
    ],
)
def test_unusable_markdown_raises_a_document_error(text: str, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason):
        document_from_markdown(text, path="x.md", default_tenant="acme")


def test_bad_files_are_skipped_by_name_and_the_rest_still_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = {
        "acme/no-front-matter.md": "# Just a heading\ntext\n",
        "acme/broken-yaml.md": "---\nid: [unclosed\n---\ntext\n",
        "acme/empty.md": "---\nid: empty\n---\n",
        "acme/z-duplicate.md": "---\nid: acme-refunds\n---\nSame id as the refund policy.\n",
    }
    sources = write_docs(tmp_path, {**DOCS, **bad})
    (tmp_path / "docs" / "acme" / "latin1.md").write_bytes("---\nid: l\n---\ncaf\xe9\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="knowledge.documents"):
        result = load_documents(sources)
    skipped = {Path(item.path).name: item.reason for item in result.skipped}
    assert set(skipped) == {"no-front-matter.md", "broken-yaml.md", "empty.md", "z-duplicate.md", "latin1.md"}
    assert "duplicate id 'acme-refunds'" in skipped["z-duplicate.md"]
    assert "UTF-8" in skipped["latin1.md"]
    assert sorted(doc.id_ for doc in result.documents) == ["acme-refunds", "acme-shipping", "globex-refunds"]
    for name in skipped:
        assert any(name in record.getMessage() for record in caplog.records)


def test_sources_glob_selects_files_and_paths_are_relative_to_the_sources_file(tmp_path: Path) -> None:
    sources = write_docs(tmp_path, DOCS)
    (tmp_path / "docs" / "notes.txt").write_text("not markdown")
    sources.write_text("sources:\n  - {name: acme, type: folder, path: docs/acme, glob: '*.md'}\n")
    assert [s.path for s in load_sources(sources)] == [tmp_path / "docs" / "acme"]
    assert sorted(doc.id_ for doc in load_documents(sources).documents) == ["acme-refunds", "acme-shipping"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("sources: [\n", "cannot read"),
        ("other: 1\n", "non-empty 'sources:' list"),
        ("sources:\n  - {name: x, type: folder, path: missing}\n", "does not exist"),
        ("sources:\n  - {name: x, type: web, path: docs}\n", "unsupported type"),
    ],
)
def test_a_broken_sources_file_is_a_sources_error(tmp_path: Path, content: str | None, message: str) -> None:
    (tmp_path / "docs").mkdir()
    sources = tmp_path / "sources.yml"
    if content is not None:
        sources.write_text(content)
    with pytest.raises(SourcesError, match=message):
        load_sources(sources)
