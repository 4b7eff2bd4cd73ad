"""The extractive answer: one passage of the retrieved articles that answers by itself, with its source (no LLM).

:class:`ExtractiveAnswerer` splits each of the first :data:`PASSAGE_CHUNKS` retrieved chunks into blocks
(:func:`knowledge.passages.parse_blocks`: paragraphs, lists, tables, each with its lead sentence and heading),
lets the passage ranker (:mod:`knowledge.rerank`) choose the block that answers the question best, and quotes it
so that it stands alone, at most ``max_chars`` long (:data:`MAX_ANSWER_CHARS` unless the index says otherwise):

- a list or table whole, after its heading and lead ("You can pay for online orders with:"), formatted for
  chat (one line per item or row, a row's cells named by their column); only the items the question names by
  their key ("PayPal", "Spain") when its most similar line is one of them; when that is too long, cut between
  items, the named and the most similar first; every list or table cut short ends with a line saying how many
  more items the article has; a numbered list (a step sequence) is cut only at the end;
  after the paragraphs its section opens with, when they fit (the rule its items refine: "On 24 and 31 December,
  all stores close at 14:00" before each store's public holidays);
- a paragraph whole when it fits (the fact asked for often sits in the sentence beside the most similar one:
  "... we refund the full express charge. Claim it within 14 days"); a longer one, after its heading and lead,
  if any, as its sentence most similar to the question and those within :data:`SENTENCE_MARGIN` of it (at
  most :data:`MAX_SENTENCES`, in reading order), each with the sentence before it when it refers back to it
  ("This", "They", "Before that", ...): the sentences that answer, never one that leans on a sentence left out;

With ``whole_section`` (``build_index.passages.whole_section``, on for the served index), a section that fits in
``max_chars`` is quoted whole instead, its blocks in reading order: a section is written to be read as one ("The
link is valid for 60 minutes" follows the reset steps, a price table follows "It is a one-off payment"), so the
block the ranker chose comes with what the article says beside it. Not when the question names items of the
chosen list or table ("PayPal"): those items alone answer it.

The quote is followed by "Source: Title › Section". Each chunk's blocks, headings and lines are embedded once: ``build_index``
embeds every chunk's and stores the vectors with the index (:data:`VECTORS_FILE`); a chunk without them is
embedded the first time it is quoted and then reused.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from knowledge.grounding import stopwords
from knowledge.passages import LIST, PARAGRAPH, TABLE, Block, parse_blocks
from knowledge.rerank import Ranker, SimilarityRanker
from knowledge.retrievers import Hit, english_stemmer, tokenize

#: Longest quoted passage, in characters (a chat bubble), unless the index records another (``build_index``).
MAX_ANSWER_CHARS = 700
#: At most this many sentences of one paragraph are quoted.
MAX_SENTENCES = 3
#: Besides the best sentence, quote those of its paragraph whose similarity is within this margin of it.
SENTENCE_MARGIN = 0.1
#: How many of the retrieved chunks the quoted passage may come from.
PASSAGE_CHUNKS = 3
#: The prepared chunks' vectors, stored with the index by ``build_index``.
VECTORS_FILE = "passages.npz"

_REFERS_BACK = re.compile(
    r"^(this|these|that|those|it|its|they|them|their|such|then|otherwise|also|however|but|if so|"
    r"(before|after|until|since|apart from|instead of) (that|this|then|these|those))\b",
    re.IGNORECASE,
)


@dataclass
class _Chunk:
    """A chunk's blocks, embedded and tokenised once (see :meth:`ExtractiveAnswerer._chunk`)."""

    blocks: list[Block]
    block_vectors: np.ndarray
    heading_vectors: np.ndarray
    line_vectors: list[np.ndarray]
    block_terms: list[frozenset[str]]
    heading_terms: list[frozenset[str]]
    # per block, per item key: its alternatives' naming words
    key_terms: list[list[tuple[frozenset[str], ...]]]


@dataclass
class Candidate:
    """A block that could be quoted: its chunk's hit, its ranking features and its lines' similarities."""

    hit: Hit
    block: Block
    features: dict[str, float]
    line_scores: np.ndarray
    named: list[int] = field(default_factory=list)  # lines whose key the question names


class ExtractiveAnswerer:
    """Quotes the passage that answers best (thread-safe; each chunk is prepared once and then reused)."""

    def __init__(
        self,
        embed_model: BaseEmbedding,
        ranker: Ranker | None = None,
        *,
        max_chars: int = MAX_ANSWER_CHARS,
        chunks: int = PASSAGE_CHUNKS,
        whole_section: bool = False,
    ):
        if max_chars < 80 or chunks < 1:
            raise ValueError(
                f"max_chars must be at least 80 and chunks at least 1, not {max_chars}, {chunks}"
            )
        self._embed_model = embed_model
        self.ranker = ranker or SimilarityRanker()
        self.max_chars = max_chars
        self.chunks = chunks
        self.whole_section = whole_section
        self._stemmer = english_stemmer()
        self._prepared: dict[str, _Chunk] = {}
        self._stored: dict[str, np.ndarray] = {}  # chunk id -> vectors stored with the index (see load)
        self._lock = threading.Lock()

    def answer(
        self, query_vector: np.ndarray | None, hits: Sequence[Hit], question: str = ""
    ) -> tuple[str, list[dict[str, str]]]:
        """The reply text (the quoted passage, then "Source: ...") and its sources, the quoted chunk first.

        ``hits`` must not be empty; without a query vector the best chunk's first block is quoted.
        """
        candidates = self.candidates(query_vector, hits, question) if query_vector is not None else []
        if candidates:
            scores = self.ranker.scores([candidate.features for candidate in candidates])
            best = candidates[int(np.argmax(scores))]
            passage, quoted = self.section(best) or self.with_opening(best, self.quote(best)), best.hit
        else:
            blocks = self._chunk(hits[0]).blocks
            passage, quoted = (
                _shorten(blocks[0].render() if blocks else hits[0].text, self.max_chars),
                hits[0],
            )
        sources = [quoted.source()]
        for hit in hits:
            if hit.source() not in sources:
                sources.append(hit.source())
        return f"{passage}\n\nSource: {quoted.source_label}", sources

    def candidates(
        self, query_vector: np.ndarray, hits: Sequence[Hit], question: str = ""
    ) -> list[Candidate]:
        """Every block of the first :attr:`chunks` hits, with its ranking features (:mod:`knowledge.rerank`)."""
        terms = frozenset(self._terms([question])[0]) if question.strip() else frozenset()
        found: list[Candidate] = []
        for rank, hit in enumerate(hits[: self.chunks]):
            chunk = self._chunk(hit)
            if not chunk.blocks:
                continue
            passage = _cosine(chunk.block_vectors, query_vector)
            heading = _cosine(chunk.heading_vectors, query_vector)
            for position, block in enumerate(chunk.blocks):
                lines = _cosine(chunk.line_vectors[position], query_vector)
                keys = chunk.key_terms[position]
                named = [i for i, key in enumerate(keys) if _names(terms, key)]
                features = {
                    "passage_sim": float(passage[position]),
                    "unit_sim": float(lines.max()) if len(lines) else 0.0,
                    "heading_sim": float(heading[position]),
                    "term_overlap": _share(terms, chunk.block_terms[position]),
                    "heading_overlap": _share(terms, chunk.heading_terms[position]),
                    "key_match": float(0 < len(named) < sum(any(key) for key in keys)),
                    "chunk_score": float(hit.score),
                    "chunk_rank": float(rank),
                    "block_position": float(position),
                    "is_list": float(block.kind == LIST),
                    "is_table": float(block.kind == TABLE),
                }
                found.append(Candidate(hit, block, features, lines, named))
        return found

    def section(self, candidate: Candidate) -> str:
        """The candidate's whole chunk (its section, or the part of a long section it holds), each block whole and
        a heading shared by consecutive blocks written once, when :attr:`whole_section` is on, the chunk has more
        than one block, it fits in :attr:`max_chars` and the question names none of the chosen block's items;
        else ""."""
        blocks = self._chunk(candidate.hit).blocks
        if not self.whole_section or len(blocks) < 2 or self._named(candidate):
            return ""
        parts, heading = [], ""
        for block in blocks:
            text = block.render()
            if block.heading == heading:  # render() starts with the heading line, written once
                text = _body(text, heading)
            heading = block.heading
            parts.append(text)
        whole = "\n".join(parts)
        return whole if len(whole) <= self.max_chars else ""

    def with_opening(self, candidate: Candidate, quoted: str) -> str:
        """A list or table quoted after the paragraphs its section opens with, when they fit in :attr:`max_chars`
        (as many of the nearest as fit, each whole): the opening states the rule the items refine ("On 24 and 31
        December, all stores close at 14:00" before the list of each store's public holidays), so an item quoted
        alone does not stand for the whole answer. A paragraph, or a block that opens its section: ``quoted``."""
        block = candidate.block
        if block.kind == PARAGRAPH:
            return quoted
        blocks = self._chunk(candidate.hit).blocks
        opening: list[Block] = []
        for before in reversed(blocks[: blocks.index(block)] if block in blocks else []):
            if before.kind != PARAGRAPH or before.heading != block.heading:
                break
            opening.insert(0, before)
        while opening:
            text = "\n".join([opening[0].render(), *(_body(b.render(), b.heading) for b in opening[1:])])
            whole = f"{text}\n{_body(quoted, block.heading)}"
            if len(whole) <= self.max_chars:
                return whole
            opening.pop(0)
        return quoted

    def quote(self, candidate: Candidate) -> str:
        """The candidate's block as it is quoted: standing alone and at most :attr:`max_chars` long."""
        block, scores = candidate.block, candidate.line_scores
        if block.kind == PARAGRAPH:
            return _shorten(block.render(self._sentences(block, scores)), self.max_chars)
        named = self._named(candidate)
        if named and len(block.render(named)) <= self.max_chars:
            return block.render(named)
        if len(block.render()) <= self.max_chars:
            return block.render()
        if block.ordered:  # a step sequence: the first steps, in order
            order = list(range(len(block.lines)))
        else:  # the items the question names, then the most similar
            named = set(candidate.named)
            order = sorted(range(len(block.lines)), key=lambda i: (i not in named, -scores[i]))
        chosen: list[int] = []
        for i in order:
            if len(block.render([*chosen, i])) <= self.max_chars:
                chosen.append(i)
            elif block.ordered:
                break
        return block.render(chosen) if chosen else _shorten(block.render([order[0]]), self.max_chars)

    @staticmethod
    def _named(candidate: Candidate) -> list[int]:
        """The items of a list or table that the question names by their key ("PayPal", "Spain"), when they are
        not all of them and the block's line most similar to the question is one of them; else none."""
        block, named = candidate.block, candidate.named
        if block.ordered or not named or len(named) == len(block.lines):
            return []
        return sorted(named) if int(np.argmax(candidate.line_scores)) in named else []

    def _sentences(self, block: Block, scores: np.ndarray) -> list[int]:
        """All of a paragraph's sentences when they fit in :attr:`max_chars`; else its best sentences (those within
        the margin of the best, at most ``MAX_SENTENCES``), each with the sentence before it when it refers back to
        it, kept within :attr:`max_chars` when possible."""
        if not len(scores):
            return []
        if len(block.render()) <= self.max_chars:  # it fits: the whole paragraph, which stands alone
            return list(range(len(block.lines)))
        ranked = [
            int(i) for i in np.argsort(-scores, kind="stable") if scores[i] >= scores.max() - SENTENCE_MARGIN
        ]
        chosen = ranked[:MAX_SENTENCES]
        for i in sorted(chosen, reverse=True):
            while i > 0 and _REFERS_BACK.match(block.lines[i]) and i - 1 not in chosen:
                chosen.append(i - 1)
                i -= 1
        while len(chosen) > 1 and len(block.render(chosen)) > self.max_chars:
            chosen.remove(min(chosen[1:], key=lambda i: scores[i]))
        return chosen

    def precompute(self, hits: Sequence[Hit], batch_size: int = 64) -> None:
        """Prepare every chunk of ``hits`` now (``build_index`` does it for all chunks, :meth:`save` stores the
        vectors with the index, so a served question embeds nothing but itself)."""
        todo = [
            hit for hit in {hit.chunk_id: hit for hit in hits}.values() if hit.chunk_id not in self._prepared
        ]
        layouts = [_layout(hit) for hit in todo]
        texts = sorted({text for _, _, chunk_texts in layouts for text in chunk_texts}, key=len)
        vectors: dict[str, np.ndarray] = {}
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            vectors.update(zip(batch, self._embed_model.get_text_embedding_batch(batch), strict=True))
        for hit, (blocks, headings, chunk_texts) in zip(todo, layouts, strict=True):
            matrix = np.asarray([vectors[text] for text in chunk_texts], dtype=np.float32)
            self._remember(hit, self._assemble(blocks, headings, matrix))

    def save(self, folder: Path | str) -> Path:
        """Write the prepared chunks' vectors to ``folder/passages.npz`` (chunk ids, rows per chunk, vectors)."""
        with self._lock:
            prepared = dict(self._prepared)
        ids = sorted(prepared)
        rows = [_vectors(prepared[chunk_id]) for chunk_id in ids]
        dim = next((len(row[0]) for row in rows if len(row)), 0)
        path = Path(folder) / VECTORS_FILE
        np.savez(
            path,
            chunk_ids=np.asarray(ids, dtype=str),
            counts=np.asarray([len(row) for row in rows], dtype=np.int64),
            vectors=np.concatenate([row for row in rows if len(row)])
            if dim
            else np.zeros((0, 0), np.float32),
        )
        return path

    def load(self, folder: Path | str) -> int:
        """Take the vectors :meth:`save` wrote in ``folder`` (none: chunks are prepared when first quoted);
        returns how many chunks they cover. A chunk's vectors are used only when its text still has as many
        blocks and lines as when they were computed."""
        path = Path(folder) / VECTORS_FILE
        if not path.is_file():
            return 0
        with np.load(path, allow_pickle=False) as data:
            ids, counts, vectors = data["chunk_ids"].tolist(), data["counts"], data["vectors"]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        self._stored = {chunk_id: vectors[offsets[i] : offsets[i + 1]] for i, chunk_id in enumerate(ids)}
        return len(self._stored)

    def _chunk(self, hit: Hit) -> _Chunk:
        """A chunk's blocks with their embeddings (block, heading and lead, each line) and stemmed terms: from
        memory, from the vectors stored with the index, or embedded now (then remembered)."""
        with self._lock:
            prepared = self._prepared.get(hit.chunk_id)
        if prepared is not None:
            return prepared
        blocks, headings, texts = _layout(hit)
        stored = self._stored.get(hit.chunk_id)
        if stored is not None and len(stored) == len(texts):
            vectors = stored
        elif texts:
            vectors = np.asarray(self._embed_model.get_text_embedding_batch(texts), dtype=np.float32)
        else:
            vectors = np.zeros((0, 0), dtype=np.float32)
        return self._remember(hit, self._assemble(blocks, headings, vectors))

    def _remember(self, hit: Hit, prepared: _Chunk) -> _Chunk:
        with self._lock:
            self._prepared[hit.chunk_id] = prepared
        return prepared

    def _terms(self, texts: list[str]) -> list[list[str]]:
        """The stemmed content words of each text: the term features compare what the question is about, so
        function words ("what", "can", "do", "you": kept by BM25's short list) are dropped (grounding's list)."""
        return tokenize(texts, self._stemmer, sorted(stopwords()))

    def _assemble(self, blocks: list[Block], headings: list[str], vectors: np.ndarray) -> _Chunk:
        """A :class:`_Chunk` from its blocks and the vectors of :func:`_layout`'s texts (blocks, headings,
        lines)."""
        n = len(blocks)
        line_vectors, start = [], 2 * n
        for block in blocks:
            line_vectors.append(vectors[start : start + len(block.lines)])
            start += len(block.lines)
        alternatives = [_alternatives(key) for block in blocks for key in block.keys]
        flat = [alt for alts in alternatives for alt in alts]
        tokens = self._terms([b.render() for b in blocks] + headings + flat)
        terms = [frozenset(t) for t in tokens]
        key_terms, start, keys_seen = [], 2 * n, 0
        for block in blocks:
            per_key = []
            for alts in alternatives[keys_seen : keys_seen + len(block.keys)]:
                per_key.append(tuple(_naming_words(t) for t in tokens[start : start + len(alts)]))
                start += len(alts)
            key_terms.append(per_key)
            keys_seen += len(block.keys)
        return _Chunk(
            blocks=blocks,
            block_vectors=vectors[:n],
            heading_vectors=vectors[n : 2 * n],
            line_vectors=line_vectors,
            block_terms=terms[:n],
            heading_terms=terms[n : 2 * n],
            key_terms=key_terms,
        )


def _layout(hit: Hit) -> tuple[list[Block], list[str], list[str]]:
    """A chunk's blocks, their headings ("Title › Section", then the block's heading and lead) and the texts
    embedded for it: each block as quoted, each heading, each line."""
    blocks = [block for block in parse_blocks(hit.text) if block.lines]
    headings = [" › ".join(filter(None, [hit.source_label, block.context])) for block in blocks]
    return (
        blocks,
        headings,
        [b.render() for b in blocks] + headings + [line for b in blocks for line in b.lines],
    )


def _vectors(prepared: _Chunk) -> np.ndarray:
    """A prepared chunk's vectors in :func:`_layout`'s order."""
    parts = [prepared.block_vectors, prepared.heading_vectors, *prepared.line_vectors]
    parts = [part for part in parts if len(part)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


#: What separates the alternatives of one item key: "Visa, Mastercard, Apple Pay", "iDEAL or Bancontact".
_ALTERNATIVES = re.compile(r"\s*(?:,|/|;|\band\b|\bor\b)\s*", re.IGNORECASE)


def _alternatives(key: str) -> list[str]:
    """An item key's alternatives, each named on its own ("Apple Pay" in "Visa, Mastercard, Apple Pay")."""
    return [part for part in _ALTERNATIVES.split(key) if part.strip()] if key.strip() else []


def _naming_words(words: Sequence[str]) -> frozenset[str]:
    """The words of one key alternative that name it: its one word ("PayPal", "Spain"), else the words before its
    last, the head noun a compound shares with its neighbours ("express" in "Express delivery", "gift" in
    "Northwind gift card", "apple" in "Apple Pay"; not "delivery", "card" or "pay")."""
    return frozenset(words[:-1] if len(words) > 1 else words)


def _names(terms: frozenset[str], key: tuple[frozenset[str], ...]) -> bool:
    """Whether the question's ``terms`` name an item by one of its key's alternatives (:func:`_naming_words`)."""
    return any(alt & terms for alt in key)


def _share(terms: frozenset[str], found: frozenset[str]) -> float:
    return len(terms & found) / len(terms) if terms else 0.0


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row with ``vector``; zero where either side is a zero vector."""
    if not len(matrix):
        return np.zeros(0, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    dots = matrix @ vector
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _body(rendered: str, heading: str) -> str:
    """A rendered block without its heading line, for a block that follows another under the same heading."""
    return rendered.split("\n", 1)[1] if heading and rendered.startswith(f"{heading}\n") else rendered


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"
