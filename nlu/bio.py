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
#: What an ``I-type`` that opens a span costs in :func:`best_path` (0: never, as strict BIO; 1: free, as each
#: word's best label). Chosen on the bot's validation split (the validation model's encoder on messages it never
#: saw) among 0, 0.001, 0.01, 0.03, 0.1, 0.3 and 1: entity F1 79.2 at 0, 80.0 at 0.1, 80.8 at 0.3, 73.2 at 1.
OPENING_INSIDE = 0.3


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
    opening_inside: float = OPENING_INSIDE,
) -> list[Span]:
    """Character spans from per-piece label probabilities (rows in piece order, columns in ``labels`` order).

    Each word is read at its first piece; its continuation pieces ("##ing") go with it, whatever their own label:
    a span always covers whole words as the tokenizer cut them. The words' labels are the most probable sequence
    under BIO's rule (:func:`best_path`: Viterbi; ``I-type`` continues a span of its type, and opening one costs
    the factor ``opening_inside``): "New"=O 0.5 / B-city 0.45 before
    "York"=I-city 0.9 reads as one city, while a bare order number whose first piece the head calls I-order_id
    0.42 (B-order_id 0.001: in "ORD-40983" the digits are always inside) is still an order id.
    ``opening_inside=1`` is each word's most probable label (``benchmarks/bio_decoding.py`` compares them).
    """
    words: list[list] = []  # [start, end, row] of each word
    last_word: int | None = None
    for (start, end), word, row in zip(offsets, word_ids, probabilities, strict=False):
        if start >= end or word is None:
            continue
        if word == last_word and words:  # a continuation piece: it goes with its word's first piece
            words[-1][1] = max(words[-1][1], end)
            continue
        words.append([start, end, row])
        last_word = word
    path = best_path([row for _, _, row in words], labels, opening_inside)
    spans: list[Span] = []
    current: list = []  # [start, end, type, [probabilities]]
    for (start, end, row), best in zip(words, path, strict=True):
        label = labels[best]
        if current and label == f"I-{current[2]}":
            current[1], current[3] = end, [*current[3], row[best]]
            continue
        if current:
            spans.append(_span(current))
            current = []
        if label != OUTSIDE:
            current = [start, end, label.split("-", 1)[1], [row[best]]]
    if current:
        spans.append(_span(current))
    return spans


def best_path(
    rows: Sequence[Sequence[float]], labels: Sequence[str], opening_inside: float = OPENING_INSIDE
) -> list[int]:
    """The label indices of the most probable BIO sequence in which ``I-type`` follows ``B-type``/``I-type`` of
    the same type; an ``I-type`` that does not (it opens a span, read as ``B-type``) costs a factor
    ``opening_inside`` (0: never). O(words x labels): ``O`` and ``B-`` may follow anything, so their best
    predecessor is the step's best; ``I-type``'s is the better of ``B-type``, ``I-type`` and, at the cost, the
    step's best."""
    if not rows:
        return []
    inside = {i: labels.index(f"B-{label[2:]}") for i, label in enumerate(labels) if label.startswith("I-")}
    opening = _log(opening_inside)
    scores = [_log(p) + (opening if i in inside else 0.0) for i, p in enumerate(rows[0])]
    back: list[list[int]] = []
    for row in rows[1:]:
        best_prev = max(range(len(labels)), key=scores.__getitem__)
        step, new = [], []
        for i, p in enumerate(row):
            prev, score = best_prev, scores[best_prev]
            if i in inside:
                b = inside[i]
                prev = i if scores[i] >= scores[b] else b
                score = scores[prev]
                if scores[best_prev] + opening > score:
                    prev, score = best_prev, scores[best_prev] + opening
            step.append(prev)
            new.append(score + _log(p))
        back.append(step)
        scores = new
    last = max(range(len(labels)), key=scores.__getitem__)
    path = [last]
    for step in reversed(back):
        path.append(step[path[-1]])
    return path[::-1]


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def _span(current: list) -> Span:
    start, end, kind, scores = current
    return Span(start, end, kind, float(sum(scores) / len(scores)))


def softmax(row: Sequence[float]) -> list[float]:
    """Probabilities of one piece's logits."""
    top = max(row)
    exps = [math.exp(value - top) for value in row]
    total = sum(exps)
    return [value / total for value in exps]
