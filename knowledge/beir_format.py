"""The BEIR file format: read and check a set, or write one (any ``corpus.jsonl`` + ``queries.jsonl`` + qrels).

The format (https://github.com/beir-cellar/beir, as the public BEIR sets ship it):

- ``corpus.jsonl``: one JSON object per line, ``{"_id": "...", "title": "...", "text": "..."}``;
- ``queries.jsonl``: ``{"_id": "...", "text": "..."}``;
- ``qrels/test.tsv``: a header line ``query-id<TAB>corpus-id<TAB>score``, then one judgement per line
  (score > 0 is relevant; graded scores are nDCG gains).

An optional ``"metadata": {"tenant": "..."}`` on corpus and query lines is honoured: a query then only
searches its tenant's documents (our exported gold set uses it; public sets have no tenants).
Malformed files raise :class:`BeirFormatError`, one line naming the file, line and problem.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

DEFAULT_TENANT = "default"


class BeirFormatError(ValueError):
    """A BEIR file is missing or malformed; the message is one line naming the file and the problem."""


@dataclass
class BeirDataset:
    """A loaded BEIR set: documents, queries, and graded relevance judgements."""

    name: str
    corpus: dict[str, dict[str, str]]
    queries: dict[str, dict[str, str]]
    qrels: dict[str, dict[str, int]]
    judged_queries: list[str] = field(default_factory=list)

    @property
    def tenants(self) -> set[str]:
        return {doc["tenant"] for doc in self.corpus.values()}


def _open(path: Path, kind: str, newline: str | None = None) -> TextIO:
    """``path`` opened as UTF-8 text, or a :class:`BeirFormatError` naming it."""
    try:
        return path.open(encoding="utf-8", newline=newline)
    except FileNotFoundError as exc:
        raise BeirFormatError(f"{kind} file not found: {path}") from exc
    except OSError as exc:
        raise BeirFormatError(f"cannot read {kind} file {path}: {exc.strerror or exc}") from exc


def _jsonl(path: Path, kind: str) -> Iterable[tuple[int, dict[str, Any]]]:
    with _open(path, kind) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BeirFormatError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise BeirFormatError(f"{path}:{number}: expected a JSON object")
                yield number, record
        except UnicodeDecodeError as exc:
            raise BeirFormatError(f"{path}: not UTF-8 text") from exc


def _tenant(record: dict[str, Any]) -> str:
    metadata = record.get("metadata")
    tenant = metadata.get("tenant") if isinstance(metadata, dict) else None
    return str(tenant) if tenant else DEFAULT_TENANT


def _records(path: Path, kind: str) -> Iterable[tuple[int, Any, str, dict[str, Any]]]:
    """``(line number, _id, text, record)`` of each line of a corpus or queries file; both are required."""
    for number, record in _jsonl(path, kind):
        record_id, text = record.get("_id"), record.get("text")
        if not isinstance(record_id, str | int) or str(record_id) == "":
            raise BeirFormatError(f"{path}:{number}: missing '_id'")
        if not isinstance(text, str):
            raise BeirFormatError(f"{path}:{number}: missing 'text'")
        yield number, record_id, text, record


def load_corpus(path: Path) -> dict[str, dict[str, str]]:
    """``{doc id: {"title", "text", "tenant"}}`` from ``corpus.jsonl``."""
    corpus: dict[str, dict[str, str]] = {}
    for number, doc_id, text, record in _records(path, "corpus"):
        if str(doc_id) in corpus:
            raise BeirFormatError(f"{path}:{number}: duplicate _id {doc_id!r}")
        corpus[str(doc_id)] = {
            "title": str(record.get("title") or ""),
            "text": text,
            "tenant": _tenant(record),
        }
    if not corpus:
        raise BeirFormatError(f"{path}: the corpus is empty")
    return corpus


def load_queries(path: Path) -> dict[str, dict[str, str]]:
    """``{query id: {"text", "tenant"}}`` from ``queries.jsonl``."""
    queries = {
        str(query_id): {"text": text, "tenant": _tenant(record)}
        for _, query_id, text, record in _records(path, "queries")
    }
    if not queries:
        raise BeirFormatError(f"{path}: no queries")
    return queries


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``{query id: {doc id: score}}`` from a qrels TSV (header line optional)."""
    qrels: dict[str, dict[str, int]] = {}
    with _open(path, "qrels", newline="") as handle:  # the csv module reads the line ends
        try:
            for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
                if not row or not "".join(row).strip():
                    continue
                if number == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid"):
                    continue
                if len(row) != 3:
                    raise BeirFormatError(
                        f"{path}:{number}: expected 3 tab-separated columns (query-id, corpus-id, score)"
                    )
                try:
                    score = int(float(row[2]))
                except ValueError as exc:
                    raise BeirFormatError(f"{path}:{number}: score {row[2]!r} is not a number") from exc
                qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
        except UnicodeDecodeError as exc:
            raise BeirFormatError(f"{path}: not UTF-8 text") from exc
    if not qrels:
        raise BeirFormatError(f"{path}: no relevance judgements")
    return qrels


def load_dataset(corpus: Path, queries: Path, qrels: Path, name: str | None = None) -> BeirDataset:
    """Read and cross-check the three files (judged queries and documents must exist)."""
    docs, questions, judgements = (
        load_corpus(Path(corpus)),
        load_queries(Path(queries)),
        load_qrels(Path(qrels)),
    )
    missing_queries = sorted(set(judgements) - set(questions))
    if missing_queries:
        raise BeirFormatError(
            f"{qrels}: {len(missing_queries)} judged query id(s) not in {queries}, e.g. {missing_queries[0]!r}"
        )
    missing_docs = sorted({doc for rel in judgements.values() for doc in rel} - set(docs))
    if missing_docs:
        raise BeirFormatError(
            f"{qrels}: {len(missing_docs)} judged document id(s) not in {corpus}, e.g. {missing_docs[0]!r}"
        )
    judged = [qid for qid in questions if any(score > 0 for score in judgements.get(qid, {}).values())]
    if not judged:
        raise BeirFormatError(f"{qrels}: no query has a relevant document (score > 0)")
    return BeirDataset(
        name=name or Path(corpus).resolve().parent.name,
        corpus=docs,
        queries=questions,
        qrels=judgements,
        judged_queries=judged,
    )


def load_folder(folder: Path, split: str = "test") -> BeirDataset:
    """A dataset laid out as BEIR ships it: ``folder/{corpus,queries}.jsonl`` and ``folder/qrels/<split>.tsv``."""
    folder = Path(folder)
    return load_dataset(
        folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv", name=folder.name
    )


def write_dataset(
    out_dir: Path,
    corpus: Mapping[str, Mapping[str, str]],
    queries: Mapping[str, Mapping[str, str]],
    qrels: Mapping[str, Mapping[str, int]],
) -> Path:
    """Write the three BEIR files into ``out_dir`` (tenants as ``metadata.tenant`` when not the default)."""
    out_dir = Path(out_dir)
    (out_dir / "qrels").mkdir(parents=True, exist_ok=True)

    def line(record_id: str, fields: Mapping[str, str], keys: Sequence[str]) -> str:
        record: dict[str, Any] = {"_id": record_id, **{key: fields.get(key, "") for key in keys}}
        if fields.get("tenant", DEFAULT_TENANT) != DEFAULT_TENANT:
            record["metadata"] = {"tenant": fields["tenant"]}
        return json.dumps(record, ensure_ascii=False) + "\n"

    with (out_dir / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(line(doc_id, doc, ("title", "text")) for doc_id, doc in corpus.items())
    with (out_dir / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(line(query_id, query, ("text",)) for query_id, query in queries.items())
    with (out_dir / "qrels" / "test.tsv").open("w", encoding="utf-8", newline="") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for query_id, judged in qrels.items():
            handle.writelines(f"{query_id}\t{doc_id}\t{score}\n" for doc_id, score in judged.items())
    return out_dir
