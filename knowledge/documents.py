"""Read the knowledge sources: ``sources.yml`` -> Markdown files -> llama-index ``Document`` objects.

A knowledge document is a Markdown file with YAML front matter::

    ---
    id: acme-refunds
    title: Refund policy
    tenant: acme
    tags: [billing, refunds]
    updated: 2025-01-31
    ---
    # Refund policy
    ## Who can ask for a refund
    ...

A file that cannot be read, has no usable front matter or no body is *skipped*: it is logged as a
warning and returned by name in :attr:`LoadResult.skipped`, so one bad file never breaks a build.
A broken ``sources.yml`` is a configuration error and raises :class:`SourcesError`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from llama_index.core import Document

logger = logging.getLogger(__name__)

#: Metadata every knowledge document (and therefore every chunk) carries.
METADATA_KEYS = ("doc_id", "title", "tenant", "tags", "updated", "path")
#: Keys kept out of the embedded text: identifiers and bookkeeping, not meaning.
EMBED_EXCLUDED_KEYS = ["doc_id", "tenant", "updated", "path"]
#: Keys kept out of any text shown to an LLM.
LLM_EXCLUDED_KEYS = ["doc_id", "tenant", "tags", "updated", "path"]

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?P<yaml>.*?)^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)
_TITLE_HEADING = re.compile(r"^#[ \t]+(?P<title>.+?)[ \t#]*$", re.MULTILINE)


class SourcesError(ValueError):
    """``sources.yml`` is missing or malformed, or names a folder that does not exist."""


class DocumentError(ValueError):
    """One knowledge file cannot be turned into a document; the message is the reason."""


@dataclass(frozen=True)
class Source:
    """One entry of ``sources.yml``: a folder of Markdown files selected by a glob."""

    name: str
    path: Path
    glob: str = "**/*.md"


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of the knowledge base, and why."""

    path: str
    reason: str


@dataclass
class LoadResult:
    """The documents read from the sources, plus the files that had to be skipped."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def load_sources(sources_path: Path) -> list[Source]:
    """Parse ``sources.yml``; relative folder paths are resolved against the file's own folder."""
    try:
        data = yaml.safe_load(Path(sources_path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourcesError(f"sources file not found: {sources_path}") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SourcesError(f"cannot read sources file {sources_path}: {_first_line(exc)}") from exc
    entries = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SourcesError(f"{sources_path}: expected a non-empty 'sources:' list")
    base = Path(sources_path).parent
    sources = []
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not entry.get("path"):
            raise SourcesError(f"{sources_path}: source #{position} needs at least a 'path'")
        kind = entry.get("type", "folder")
        if kind != "folder":
            raise SourcesError(f"{sources_path}: source #{position} has unsupported type {kind!r}")
        folder = base / str(entry["path"])
        if not folder.is_dir():
            raise SourcesError(f"{sources_path}: source folder does not exist: {folder}")
        name = str(entry.get("name") or entry["path"])
        sources.append(Source(name=name, path=folder, glob=str(entry.get("glob") or "**/*.md")))
    return sources


def parse_markdown(text: str) -> tuple[dict[str, Any], str]:
    """Split a Markdown file into its YAML front matter (a mapping) and its body.

    Raises :class:`DocumentError` when the front matter is missing, not valid YAML or not a mapping.
    """
    match = _FRONT_MATTER.match(text.lstrip("\ufeff"))
    if match is None:
        raise DocumentError("no YAML front matter (the file must start with a '---' block)")
    try:
        meta = yaml.safe_load(match.group("yaml"))
    except yaml.YAMLError as exc:
        raise DocumentError(f"invalid YAML front matter: {_first_line(exc)}") from exc
    if not isinstance(meta, dict):
        raise DocumentError("front matter is not a mapping of fields")
    return meta, text.lstrip("\ufeff")[match.end() :]


def document_from_markdown(text: str, *, path: str, default_tenant: str) -> Document:
    """Build the llama-index ``Document`` for one Markdown file's text (``path`` is for metadata only)."""
    meta, body = parse_markdown(text)
    if not body.strip():
        raise DocumentError("empty document (no text after the front matter)")
    doc_id = meta.get("id")
    if not isinstance(doc_id, str | int) or isinstance(doc_id, bool) or not str(doc_id).strip():
        raise DocumentError("front matter needs a non-empty 'id'")
    tenant = meta.get("tenant", default_tenant)
    if not isinstance(tenant, str) or not tenant.strip():
        raise DocumentError("'tenant' must be a non-empty string")
    heading = _TITLE_HEADING.search(body)
    title = meta.get("title") or (heading.group("title") if heading else Path(path).stem)
    metadata = {
        "doc_id": str(doc_id).strip(),
        "title": str(title).strip(),
        "tenant": tenant.strip(),
        "tags": _tags(meta.get("tags")),
        "updated": _iso(meta.get("updated")),
        "path": path,
    }
    return Document(
        text=body.strip() + "\n",
        id_=metadata["doc_id"],
        metadata=metadata,
        excluded_embed_metadata_keys=list(EMBED_EXCLUDED_KEYS),
        excluded_llm_metadata_keys=list(LLM_EXCLUDED_KEYS),
    )


def load_documents(sources_path: Path, default_tenant: str = "acme") -> LoadResult:
    """Read every Markdown file the sources select, skipping (and reporting) the ones that are unusable.

    Files are read in sorted order, each at most once; a second file claiming an already used ``id``
    is skipped too, so document ids stay unique across tenants.
    """
    result = LoadResult()
    seen_files: set[Path] = set()
    owner_of: dict[str, str] = {}
    for source in load_sources(sources_path):
        for file in sorted(p for p in source.path.glob(source.glob) if p.is_file()):
            if file.resolve() in seen_files:
                continue
            seen_files.add(file.resolve())
            shown = _display_path(file)
            try:
                document = document_from_markdown(_read_text(file), path=shown, default_tenant=default_tenant)
            except DocumentError as exc:
                _skip(result, shown, str(exc))
                continue
            doc_id = document.metadata["doc_id"]
            if doc_id in owner_of:
                _skip(result, shown, f"duplicate id {doc_id!r} (already used by {owner_of[doc_id]})")
                continue
            owner_of[doc_id] = shown
            result.documents.append(document)
    return result


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise DocumentError(f"unreadable: {exc.strerror or exc}") from exc


def _skip(result: LoadResult, path: str, reason: str) -> None:
    logger.warning("skipping knowledge file %s: %s", path, reason)
    result.skipped.append(SkippedFile(path=path, reason=reason))


def _tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [tag.strip() for tag in value.split(",") if tag.strip()]
    if isinstance(value, list) and all(isinstance(tag, str | int) for tag in value):
        return [str(tag).strip() for tag in value if str(tag).strip()]
    raise DocumentError("'tags' must be a list of strings")


def _iso(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def _display_path(file: Path) -> str:
    """The file's path relative to the working directory when possible (stable across machines)."""
    try:
        return file.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return file.as_posix()


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
