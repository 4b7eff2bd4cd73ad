"""The structure of an article section (paragraphs, lists, tables) and its blocks formatted for chat.

A section's Markdown is a sequence of :class:`Segment` objects, as written: a *paragraph* (text lines; a fenced
code block is one paragraph kept verbatim), a *list* (bulleted, or numbered: a step sequence) or a *table* (a
header row, its rule and the rows). A ``###`` (or deeper) heading is the *heading* of the segments under it.

:func:`parse_blocks` turns them into :class:`Block` objects, what the extractive answer quotes: a paragraph's
sentences, a list's items, a table's rows as chat lines (``Germany: 1–2 business days``, or
``Germany — Express delivery time: Next business day; Price: €9.95`` with more columns). A paragraph sentence
ending with ":" right before a list, table or paragraph is that block's *lead* ("You can pay for online
orders with:"): the two are one block, so a lead is never quoted without what it introduces. A list item's
bold label or short "label:" (``**PayPal.**``, ``Standard delivery: ...``) and a table row's first cell are
the item's *key*, so the items a question names can be found when a long list must be cut.

:meth:`Block.render` formats a block for chat: heading, lead, then the chosen sentences, items or rows and,
when items were left out, a marker saying how many more the article has. Chunking (:mod:`knowledge.index`)
cuts a section only between segments, and a long list or table only between items with its lead (marked
:data:`CONTINUED`) and header repeated, so every chunk parses back into whole blocks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

PARAGRAPH = "paragraph"
LIST = "list"
TABLE = "table"
#: Added to a lead (before its colon) repeated at the top of the next chunk of a list or table cut in two.
CONTINUED = " (continued)"
#: A "label: text" list item is keyed only when the label is this short (in words).
MAX_KEY_WORDS = 8

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_LIST_ITEM = re.compile(r"^\s*(?P<marker>[-*+]|\d+[.)])\s+(?P<text>.*)$")
_HEADING = re.compile(r"^\s*#{1,6}\s+(?P<text>.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_BOLD_KEY = re.compile(r"^(\*\*|__)(?P<key>.+?)\1")
_PLAIN_KEY = re.compile(r"^(?P<key>[^:.!?]+?):\s+\S")


@dataclass
class Segment:
    """A run of Markdown lines of one kind, as written: what chunking packs, and cuts between items.

    ``head`` holds a paragraph's lines or a table's header and rule; ``items`` a list's items or a table's
    rows (each its own lines). ``heading`` is the ``###`` heading line the segment sits under and ``opens``
    whether that line is written right above it.
    """

    kind: str
    heading: str = ""
    opens: bool = False
    head: list[str] = field(default_factory=list)
    items: list[list[str]] = field(default_factory=list)

    def markdown(self, items: Sequence[Sequence[str]] | None = None, *, with_heading: bool = False) -> str:
        """The segment's Markdown (only ``items`` of a list or table when given); its heading line above it
        when it opens the heading or ``with_heading``."""
        lines = [self.heading] if self.heading and (self.opens or with_heading) else []
        lines += self.head + [line for item in (self.items if items is None else items) for line in item]
        return "\n".join(lines)

    @property
    def leads(self) -> bool:
        """A paragraph whose last line ends with ":" introduces the segment after it."""
        return self.kind == PARAGRAPH and bool(self.head) and self.head[-1].rstrip().endswith(":")


def segments(markdown: str) -> list[Segment]:
    """The segments of a section's Markdown in reading order (blank lines and headings separate them; blank
    lines between the items of one list do not)."""
    found: list[Segment] = []
    current: Segment | None = None
    heading, opens, in_fence, blank_in_list = "", False, False, False

    def start(kind: str) -> Segment:
        nonlocal current, opens
        close()
        current, opens = Segment(kind, heading, opens), False
        return current

    def close() -> None:
        nonlocal current
        if current is not None and (current.head or current.items):
            found.append(current)
        current = None

    for raw in markdown.splitlines():
        line = raw.rstrip()
        if in_fence:
            current.head.append(line)
            if _FENCE.match(line):
                in_fence = False
                close()
            continue
        if _FENCE.match(line):
            start(PARAGRAPH).head.append(line)
            in_fence = True
            continue
        if not line.strip():
            blank_in_list = current is not None and current.kind == LIST
            if not blank_in_list:
                close()
            continue
        item = _LIST_ITEM.match(line)
        if blank_in_list and not item:
            close()
        blank_in_list = False
        if title := _HEADING.match(line):
            close()
            heading, opens = title.group(0).strip(), True
        elif item:
            segment = current if current is not None and current.kind == LIST else start(LIST)
            segment.items.append([line])
        elif line.lstrip().startswith("|"):
            segment = current if current is not None and current.kind == TABLE else start(TABLE)
            if _is_rule(line) and not segment.head and len(segment.items) == 1:
                segment.head = [*segment.items.pop(), line]  # the row above the rule is the header
            else:
                segment.items.append([line])
        elif current is not None and current.kind == LIST:
            current.items[-1].append(line)  # a continuation line of the last item
        else:
            segment = current if current is not None and current.kind == PARAGRAPH else start(PARAGRAPH)
            segment.head.append(line)
    close()
    return found


def units(found: Sequence[Segment]) -> list[list[Segment]]:
    """Segments grouped so that a lead paragraph stays with the segment it introduces: the atoms of chunking
    (and of :func:`parse_blocks`)."""
    grouped: list[list[Segment]] = []
    for segment in found:
        if grouped and grouped[-1][-1].leads and not segment.opens:
            grouped[-1].append(segment)
        else:
            grouped.append([segment])
    return grouped


@dataclass(frozen=True)
class Block:
    """One quotable block: a paragraph (``lines`` are its sentences), a list (its items) or a table (its rows
    as chat lines), with its ``lead`` sentence and ``heading`` (either may be empty) and each line's ``key``
    ("" for none)."""

    kind: str
    lines: tuple[str, ...]
    lead: str = ""
    heading: str = ""
    ordered: bool = False
    keys: tuple[str, ...] = ()

    @property
    def context(self) -> str:
        """The heading and lead: what the block is about, for the reader and for the ranker."""
        return " ".join(part for part in (self.heading, self.lead) if part)

    def render(self, chosen: Sequence[int] | None = None) -> str:
        """The block for chat: heading, lead, the ``chosen`` lines (all by default) in reading order and, when
        list items or table rows were left out, :func:`more_marker`."""
        picked = sorted(set(range(len(self.lines)) if chosen is None else chosen))
        parts = [part for part in (self.heading, self.lead) if part]
        if self.kind == PARAGRAPH:
            parts.append(" ".join(self.lines[i] for i in picked))
        else:
            parts += [f"{i + 1}. {self.lines[i]}" if self.ordered else f"- {self.lines[i]}" for i in picked]
            if len(picked) < len(self.lines):
                parts.append(more_marker(len(self.lines) - len(picked)))
        return "\n".join(parts)


def more_marker(left_out: int) -> str:
    """The line that ends a list or table cut short: the article has ``left_out`` more items."""
    return f"…and {left_out} more in the article."


def parse_blocks(markdown: str) -> list[Block]:
    """The blocks of a section's (or a chunk's) Markdown, in reading order. A closing sentence ending with ":"
    that introduces nothing (the article, or a chunk, ends there) is left out."""
    blocks: list[Block] = []
    for group in units(segments(markdown)):
        heading = _heading_text(group[0].heading)
        lead = ""
        if len(group) > 1:  # the lead paragraph's last sentence introduces the group's last segment
            sentences = split_sentences(" ".join(_plain(line) for seg in group[:-1] for line in seg.head))
            lead = sentences.pop() if sentences else ""
            if sentences:
                blocks.append(Block(PARAGRAPH, tuple(sentences), heading=heading))
        block = _block(group[-1], lead, heading)
        if group[-1].leads and not _FENCE.match(group[-1].head[0]):  # introduces nothing: drop that sentence
            block = Block(PARAGRAPH, block.lines[:-1], lead=block.lead, heading=heading)
        if block.lines:
            blocks.append(block)
    return blocks


def split_sentences(text: str) -> list[str]:
    """Plain text split at sentence ends."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def lead_continued(lead_line: str) -> str:
    """A lead line repeated above the rest of its list or table in the next chunk: ``CONTINUED`` before its
    colon."""
    return lead_line.rstrip().removesuffix(":") + CONTINUED + ":"


def _block(segment: Segment, lead: str, heading: str) -> Block:
    if segment.kind == PARAGRAPH:
        if _FENCE.match(segment.head[0]):  # code: verbatim
            code = "\n".join(line for line in segment.head if not _FENCE.match(line))
            return Block(PARAGRAPH, (code,) if code.strip() else (), lead=lead, heading=heading)
        return Block(
            PARAGRAPH, tuple(split_sentences(_lines_joined(segment.head))), lead=lead, heading=heading
        )
    if segment.kind == LIST:
        texts = [
            " ".join([_LIST_ITEM.match(item[0]).group("text"), *(line.strip() for line in item[1:])])
            for item in segment.items
        ]
        ordered = _LIST_ITEM.match(segment.items[0][0]).group("marker")[0].isdigit()
        return Block(
            LIST,
            tuple(_plain(text) for text in texts),
            lead=lead,
            heading=heading,
            ordered=ordered,
            keys=tuple(_item_key(text) for text in texts),
        )
    header = _cells(segment.head[0]) if segment.head else []
    rows = [_cells(item[0]) for item in segment.items]
    return Block(
        TABLE,
        tuple(_row_line(header, row) for row in rows),
        lead=lead,
        heading=heading,
        keys=tuple(row[0] if len(row) > 1 else "" for row in rows),
    )


def _lines_joined(lines: Sequence[str]) -> str:
    """A paragraph's lines as text: a line break kept after a line that ends without punctuation before one that
    starts a new line of its own (an address, "Phone: ..."), a space elsewhere."""
    text = _plain(lines[0])
    for line in lines[1:]:
        plain = _plain(line)
        own_line = not text.endswith(tuple(".!?:;,")) and (plain[:1].isupper() or plain[:1].isdigit())
        text += ("\n" if own_line else " ") + plain
    return text


def _item_key(text: str) -> str:
    """A list item's key: its bold label ("**Cards:** Visa..."), the whole item when it is short and starts in
    bold ("**PayPal.**", "**Apple Pay** and **Google Pay.**"), or a short label before ": "; "" when none."""
    plain = _plain(text)
    if bold := _BOLD_KEY.match(text):
        label = _plain(bold.group("key"))
        if label.endswith(":") or text[bold.end() :].startswith(":") or len(plain.split()) > MAX_KEY_WORDS:
            return label.rstrip(".:").strip()
        return plain.rstrip(".:")
    label = _PLAIN_KEY.match(plain)
    return label.group("key").strip() if label and len(label.group("key").split()) <= MAX_KEY_WORDS else ""


def _row_line(header: Sequence[str], row: Sequence[str]) -> str:
    """A table row as one chat line; with more than two columns each cell is named by its column."""
    if len(row) <= 1:
        return row[0] if row else ""
    if len(row) == 2:
        return f"{row[0]}: {row[1]}"
    names = [*header[1:], *[""] * len(row)][: len(row) - 1]  # as many names as cells after the first
    return f"{row[0]} — " + "; ".join(
        f"{name}: {cell}" if name else cell for name, cell in zip(names, row[1:], strict=True)
    )


def _cells(line: str) -> list[str]:
    return [_plain(cell) for cell in line.strip().strip("|").split("|")]


def _is_rule(line: str) -> bool:
    return set(line.strip()) <= set("|-: ") and "-" in line


def _heading_text(line: str) -> str:
    match = _HEADING.match(line) if line else None
    return _plain(match.group("text")) if match else ""


def _plain(text: str) -> str:
    """Text without bold marks and surplus whitespace."""
    return " ".join(text.replace("**", "").replace("__", "").split())
