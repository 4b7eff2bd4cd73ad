"""Entity spans as BIO tags over the encoder's word pieces, and back: the one definition both sides use.

Training (:mod:`nlu.finetune`, main environment) turns each example's character spans into one label per word
piece (:func:`piece_labels`); serving (``nlu.components.bio_entities``, Rasa environment) turns the token
classifier's per-piece probabilities back into character spans (:func:`decode`). Both read the tokenizer's own
character offsets, so a span is exact in the original text, punctuation and non-ASCII letters included, and need
not follow whitespace ("5pm" -> "5" as a number and "pm" as something else is fine as long as the pieces split
there). Rasa-free and torch-free: plain lists in, plain lists out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

OUTSIDE = "O"
#: The label of a piece that does not count in the loss (special tokens, padding): torch's ignore_index.
IGNORED = -100


def labels_for(types: Sequence[str]) -> list[str]:
    """``O`` then ``B-type`` and ``I-type`` of each entity type, types sorted (the head's output order)."""
    return [OUTSIDE, *(f"{tag}-{kind}" for kind in sorted(set(types)) for tag in ("B", "I"))]


def piece_labels(
    offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int, str]], labels: Sequence[str]
) -> list[int]:
    """One label index per piece: ``B-type`` for the first piece inside a span, ``I-type`` for the next ones,
    ``O`` outside; :data:`IGNORED` for pieces with no characters (``[CLS]``, ``[SEP]``, padding). A piece counts as
    inside a span when it overlaps it (a span that starts or ends inside a piece takes the whole piece)."""
    index = {label: i for i, label in enumerate(labels)}
    out = []
    opened: set[int] = set()
    for start, end in offsets:
        if start >= end:
            out.append(IGNORED)
            continue
        label = OUTSIDE
        for n, (span_start, span_end, kind) in enumerate(spans):
            if start < span_end and end > span_start:
                label = f"{'I' if n in opened else 'B'}-{kind}"
                opened.add(n)
                break
        out.append(index[label])
    return out


@dataclass(frozen=True)
class Span:
    """One tagged entity: ``text[start:end]`` is its value; ``confidence`` the mean probability of its pieces'
    labels."""

    start: int
    end: int
    entity: str
    confidence: float

    def as_entity(self, text: str) -> dict[str, object]:
        """Rasa's entity dict (without the extractor's name)."""
        return {
            "entity": self.entity,
            "start": self.start,
            "end": self.end,
            "value": text[self.start : self.end],
            "confidence_entity": round(self.confidence, 4),
        }


def decode(
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    probabilities: Sequence[Sequence[float]],
    labels: Sequence[str],
) -> list[Span]:
    """Character spans from per-piece label probabilities (rows in piece order, columns in ``labels`` order).

    A span opens at a ``B-type`` piece, or at an ``I-type`` piece that does not continue a span of that type (the
    usual lenient reading), and takes the following ``I-type`` pieces. A word's continuation pieces ("##ing") go
    with the span of its first piece, whatever their own label: a span always covers whole words as the tokenizer
    cut them."""
    spans: list[Span] = []
    current: list = []  # [start, end, type, [probabilities]]
    last_word: int | None = None
    for (start, end), word, row in zip(offsets, word_ids, probabilities, strict=False):
        if start >= end or word is None:
            continue
        if word == last_word:  # a continuation piece: it goes with its word's first piece
            if current:
                current[1] = max(current[1], end)
            continue
        best = max(range(len(labels)), key=lambda i: row[i])
        label = labels[best]
        if current and label == f"I-{current[2]}":
            current[1], current[3] = end, [*current[3], row[best]]
        else:
            if current:
                spans.append(_span(current))
                current = []
            if label != OUTSIDE:
                current = [start, end, label.split("-", 1)[1], [row[best]]]
        last_word = word
    if current:
        spans.append(_span(current))
    return spans


def _span(current: list) -> Span:
    start, end, kind, scores = current
    return Span(start, end, kind, float(sum(scores) / len(scores)))


def softmax(row: Sequence[float]) -> list[float]:
    """Probabilities of one piece's logits."""
    top = max(row)
    exps = [math.exp(value - top) for value in row]
    total = sum(exps)
    return [value / total for value in exps]
