"""The gold (and dev) question files: questions, the documents that answer them, and their checks.

The file (``knowledge/eval/gold.yml``; ``dev.yml`` has the same form)::

    questions:
      - id: q-refund-window
        question: How long do I have to ask for a refund?
        answer: Within 30 days of the invoice.
        doc_ids: [acme-refunds]
        kind: direct            # direct | paraphrase | multi_doc | unanswerable
        tenant: acme            # optional, defaults to the base tenant
        section: Who can ask    # optional: the section(s) (## heading, or a list of them) that answer it
        passage: within 30 days # optional: text of the paragraph, list or table that answers it (or a list)
        after: Can I get a refund? # optional: a follow-up's question before it, read with it as the bot reads
                                   # a follow-up with its topic (knowledge/eval/followups.yml)

Unanswerable questions, and only they, have no ``doc_ids``. Every problem raises :class:`GoldSetError`
with one line naming the file and the question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KINDS = ("direct", "paraphrase", "multi_doc", "unanswerable")


class GoldSetError(ValueError):
    """The gold file is missing or malformed, or refers to documents the index does not hold."""


@dataclass(frozen=True)
class GoldQuestion:
    """One gold question and the documents that answer it (none for an unanswerable one)."""

    id: str
    question: str
    answer: str
    doc_ids: tuple[str, ...]
    kind: str
    tenant: str
    sections: tuple[str, ...] = ()  # the sections that answer it, when labelled (the passage ranker's target)
    passages: tuple[str, ...] = ()  # text found in the block(s) of those sections that answer it
    after: str = ""  # a follow-up's question before it (its topic); "" for a question asked on its own

    @property
    def answerable(self) -> bool:
        """True when some document answers the question."""
        return bool(self.doc_ids)


def load_gold(path: Path | str, default_tenant: str = "acme") -> list[GoldQuestion]:
    """Read and validate the gold file; every problem raises :class:`GoldSetError` with one clear line."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GoldSetError(f"gold file not found: {path}") from exc
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise GoldSetError(f"gold file {path} is not valid YAML: {detail}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldSetError(f"cannot read gold file {path}: {exc}") from exc
    entries = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise GoldSetError(f"gold file {path}: expected a non-empty 'questions:' list")
    questions = [
        _gold_question(entry, position, path, default_tenant) for position, entry in enumerate(entries, 1)
    ]
    seen: set[str] = set()
    for question in questions:
        if question.id in seen:
            raise GoldSetError(f"gold file {path}: duplicate question id {question.id!r}")
        seen.add(question.id)
    return questions


def check_gold_against_index(questions: Sequence[GoldQuestion], manifest: dict[str, Any]) -> None:
    """Every gold doc id must exist in the index and belong to the question's tenant."""
    tenant_of = {doc["doc_id"]: doc["tenant"] for doc in manifest.get("documents", [])}
    for question in questions:
        for doc_id in question.doc_ids:
            if doc_id not in tenant_of:
                raise GoldSetError(f"gold question {question.id!r} names unknown doc id {doc_id!r}")
            if tenant_of[doc_id] != question.tenant:
                raise GoldSetError(
                    f"gold question {question.id!r} (tenant {question.tenant!r}) names doc id "
                    f"{doc_id!r} of tenant {tenant_of[doc_id]!r}"
                )


def _gold_question(entry: Any, position: int, path: Path | str, default_tenant: str) -> GoldQuestion:
    where = f"gold file {path}, question #{position}"
    if not isinstance(entry, dict):
        raise GoldSetError(f"{where}: expected a mapping")
    missing = [key for key in ("id", "question", "kind") if not entry.get(key)]
    if missing:
        raise GoldSetError(f"{where}: missing {', '.join(missing)}")
    kind = str(entry["kind"])
    if kind not in KINDS:
        raise GoldSetError(f"{where}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    doc_ids = entry.get("doc_ids") or []
    if not isinstance(doc_ids, list) or not all(isinstance(doc_id, str) for doc_id in doc_ids):
        raise GoldSetError(f"{where}: doc_ids must be a list of document ids")
    if (kind == "unanswerable") != (not doc_ids):
        raise GoldSetError(f"{where}: unanswerable questions, and only they, have no doc_ids")
    sections = _texts(entry, "section", where)
    passages = _texts(entry, "passage", where)
    if (sections or passages) and not doc_ids:
        raise GoldSetError(f"{where}: an unanswerable question has no section or passage")
    if passages and not sections:
        raise GoldSetError(f"{where}: a passage needs the section it is in")
    after = entry.get("after") or ""
    if not isinstance(after, str):
        raise GoldSetError(f"{where}: after must be the text of the question before it")
    return GoldQuestion(
        id=str(entry["id"]),
        question=str(entry["question"]),
        answer=str(entry.get("answer") or ""),
        doc_ids=tuple(doc_ids),
        kind=kind,
        tenant=str(entry.get("tenant") or default_tenant),
        sections=sections,
        passages=passages,
        after=after.strip(),
    )


def _texts(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """An optional label: one text or a list of texts (an empty tuple when absent)."""
    value = entry.get(key) or []
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(text, str) and text.strip() for text in value):
        raise GoldSetError(f"{where}: {key} must be a text or a list of texts")
    return tuple(text.strip() for text in value)
