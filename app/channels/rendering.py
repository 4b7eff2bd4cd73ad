"""One response model for every channel, and its rendering for each medium.

The bot's actions answer with Rasa messages (``text``, ``buttons``, ``image``, ``custom``); a knowledge answer
ends its text with the line ``Source: Title › Section`` or ``Sources: [1] Title; [2] Other``
(:mod:`app.orchestration.answering`, :mod:`knowledge.extractive`). :func:`parse_reply` turns one message into a
:class:`Reply`: the text without that line, the buttons, the sources (each with a link when the tenant has a
``source_links`` template) and the links in the text. Each medium renders a ``Reply`` its own way:

- web (Streamlit chat page): Markdown with the sources as links (:func:`web_markdown`);
- Slack: Block Kit, buttons as ``actions``, sources as a ``context`` block (:func:`slack_message`);
- Microsoft Teams: a Bot Framework activity, buttons as ``messageBack`` card actions (:func:`teams_activity`);
- SMS: plain text split at the SMS segment limit, buttons as numbered options (:func:`sms_messages`);
- voice: short spoken sentences, no URLs or Markdown, ids read out character by character (:func:`speech`).

A user answers offered buttons the channel's way: a click (Slack, Teams, web) sends the payload; a number or
the title, typed or spoken, is mapped back to the payload by :func:`choose_option`.

Standard library only: the Rasa server (Python 3.10) renders with it, and the chat page and the rendering
benchmark (Python 3.11) import it too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

SOURCES_LINE = re.compile(r"(?:^|\n)Sources?: (?P<labels>[^\n]+)\s*$")
CITATION_PREFIX = re.compile(r"^\[\d+\]\s*")
MARKDOWN_LINK = re.compile(r"\[(?P<title>[^\]\n]+)\]\((?P<url>https?://[^)\s]+)\)")
BARE_URL = re.compile(r"https?://[^\s<>()\]]+[^\s<>()\].,;:!?'\"]")
LABEL_SEPARATOR = " › "  # "Title › Section", as knowledge chunks label themselves


@dataclass(frozen=True)
class Button:
    """An option the bot offers: ``title`` is shown (or spoken), ``payload`` is what choosing it sends."""

    title: str
    payload: str


@dataclass(frozen=True)
class Source:
    """A knowledge article a reply is drawn from: its label ("Title › Section") and a link, when known."""

    label: str
    url: str | None = None

    @property
    def title(self) -> str:
        return self.label.split(LABEL_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class Reply:
    """One bot message as every channel sees it (see the module docstring)."""

    text: str = ""
    buttons: tuple[Button, ...] = ()
    sources: tuple[Source, ...] = ()
    links: tuple[str, ...] = ()
    image: str | None = None
    custom: Any = field(default=None, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.text or self.buttons or self.sources or self.image)


def source_url(label: str, template: str | None) -> str | None:
    """The link of a source from the tenant's template (``{title}``, ``{section}``, ``{slug}`` filled in,
    URL-quoted); None without a template."""
    if not template:
        return None
    title, _, section = label.partition(LABEL_SEPARATOR)
    return template.format_map(
        {"title": quote(title.strip()), "section": quote(section.strip()), "slug": slug(title)}
    )


def slug(text: str) -> str:
    """``"Talking to a human agent"`` -> ``"talking-to-a-human-agent"`` (ASCII, for URLs)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def split_sources(text: str) -> tuple[str, list[str]]:
    """``(text without its sources line, the labels it names)``, ``[n]`` citation numbers dropped: the one
    reader of the line the answerers write (the channels render it, the evaluation reads what was cited)."""
    found = SOURCES_LINE.search(text)
    if not found:
        return text, []
    labels = [CITATION_PREFIX.sub("", label.strip()) for label in found["labels"].split("; ")]
    return text[: found.start()].rstrip(), [label for label in dict.fromkeys(labels) if label]


def parse_reply(message: Mapping[str, Any], link_template: str | None = None) -> Reply:
    """A Rasa bot message (``text``, ``buttons`` or ``quick_replies``, ``image``, ``custom``) as a
    :class:`Reply`; ``link_template`` makes the sources links (:func:`source_url`)."""
    text = str(message.get("text") or "").strip()
    text, labels = split_sources(text)
    sources = tuple(Source(label, source_url(label, link_template)) for label in labels)
    raw_buttons = message.get("buttons") or message.get("quick_replies") or []
    buttons = tuple(
        Button(str(b.get("title") or b.get("payload") or ""), str(b.get("payload") or b.get("title") or ""))
        for b in raw_buttons
        if isinstance(b, Mapping) and (b.get("title") or b.get("payload"))
    )
    links = [m["url"] for m in MARKDOWN_LINK.finditer(text)]
    links += [url for url in BARE_URL.findall(MARKDOWN_LINK.sub("", text)) if url not in links]
    image = message.get("image")
    return Reply(
        text=text,
        buttons=buttons,
        sources=sources,
        links=tuple(links),
        image=str(image) if image else None,
        custom=message.get("custom"),
    )


# --- plain text (SMS, voice) -----------------------------------------------------------------------------

_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_HEADING = re.compile(r"^#{1,6}\s*", re.MULTILINE)


def plain_text(text: str) -> str:
    """Markdown removed: emphasis and code marks, headings, ``[title](url)`` -> ``title: url``."""
    text = MARKDOWN_LINK.sub(lambda m: f"{m['title']}: {m['url']}", text)
    text = _HEADING.sub("", text)
    for _ in range(2):  # nested emphasis: **_this_**
        text = _EMPHASIS.sub(r"\2", text)
    return text


# --- web (the Streamlit chat page) ----------------------------------------------------------------------


def web_markdown(reply: Reply) -> str:
    """The reply as Markdown for the chat page: the text, then the sources, as links where known. Buttons
    stay the page's own clickable quick replies."""
    parts = [reply.text] if reply.text else []
    if reply.sources:
        shown = [f"[{s.label}]({s.url})" if s.url else s.label for s in reply.sources]
        parts.append(f"{'Sources' if len(shown) > 1 else 'Source'}: {'; '.join(shown)}")
    return "\n\n".join(parts)


# --- Slack Block Kit ------------------------------------------------------------------------------------

SLACK_SECTION_CHARS = 3000  # Block Kit: a section's text
SLACK_BUTTON_TITLE_CHARS = 75
SLACK_BUTTON_VALUE_CHARS = 2000
SLACK_ACTIONS_PER_BLOCK = 25
SLACK_CONTEXT_ELEMENTS = 10


def slack_mrkdwn(text: str) -> str:
    """Markdown -> Slack mrkdwn: ``**bold**`` -> ``*bold*``, ``[title](url)`` -> ``<url|title>``; ``&<>``
    escaped as Slack asks."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = MARKDOWN_LINK.sub(lambda m: f"<{m['url']}|{m['title']}>", text)
    text = re.sub(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", r"*\1*", text)
    return _HEADING.sub("", text)


def _chunks(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at paragraph, line or word ends."""
    pieces, rest = [], text
    while len(rest) > limit:
        cut = max(rest.rfind("\n\n", 0, limit), rest.rfind("\n", 0, limit), rest.rfind(" ", 0, limit))
        cut = cut if cut > 0 else limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return [*pieces, rest] if rest else pieces


def slack_message(reply: Reply) -> dict[str, Any]:
    """``chat.postMessage`` arguments: ``text`` (the notification and fallback) and ``blocks``."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": piece}}
        for piece in _chunks(slack_mrkdwn(reply.text), SLACK_SECTION_CHARS)
    ]
    if reply.image:
        blocks.append({"type": "image", "image_url": reply.image, "alt_text": "image"})
    for start in range(0, len(reply.buttons), SLACK_ACTIONS_PER_BLOCK):
        group = reply.buttons[start : start + SLACK_ACTIONS_PER_BLOCK]
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"option-{start + number}",
                        "text": {"type": "plain_text", "text": b.title[:SLACK_BUTTON_TITLE_CHARS]},
                        "value": b.payload[:SLACK_BUTTON_VALUE_CHARS],
                    }
                    for number, b in enumerate(group)
                ],
            }
        )
    if reply.sources:
        elements = [
            {"type": "mrkdwn", "text": f"Source: <{s.url}|{s.label}>" if s.url else f"Source: {s.label}"}
            for s in reply.sources[:SLACK_CONTEXT_ELEMENTS]
        ]
        blocks.append({"type": "context", "elements": elements})
    fallback = plain_text(reply.text) or ", ".join(b.title for b in reply.buttons) or "(image)"
    return {"text": fallback, "blocks": blocks}


# --- Microsoft Teams (Bot Framework activity) ------------------------------------------------------------

HERO_CARD = "application/vnd.microsoft.card.hero"


def teams_activity(reply: Reply) -> dict[str, Any]:
    """A Bot Framework ``message`` activity (without the addressing fields): Markdown text with the sources
    as links, buttons as ``messageBack`` actions of a hero card (a click sends the payload as the user's
    text and shows the title in the chat)."""
    text = web_markdown(reply)
    activity: dict[str, Any] = {"type": "message", "textFormat": "markdown", "text": text}
    card: dict[str, Any] = {}
    if reply.image:
        card["images"] = [{"url": reply.image}]
    if reply.buttons:
        card["buttons"] = [
            {"type": "messageBack", "title": b.title, "text": b.payload, "displayText": b.title}
            for b in reply.buttons
        ]
    if card:
        activity["attachments"] = [{"contentType": HERO_CARD, "content": card}]
    return activity


# --- SMS ------------------------------------------------------------------------------------------------

# GSM 03.38: the basic set costs one septet, the extension set two; anything else makes the message UCS-2.
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")
GSM_ALL = GSM_BASIC | GSM_EXTENDED
_WITHOUT_EXTENDED = str.maketrans("", "", "".join(GSM_EXTENDED))
SMS_GSM_CHARS, SMS_UCS2_CHARS = 160, 70  # one segment
SMS_TYPOGRAPHY = str.maketrans(
    {"›": ">", "‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."}
)


def sms_cost(text: str) -> tuple[int, int]:
    """``(units used, units per segment)``: GSM-7 septets of 160, or UTF-16 code units of 70 (UCS-2)."""
    if set(text) <= GSM_ALL:
        return 2 * len(text) - len(text.translate(_WITHOUT_EXTENDED)), SMS_GSM_CHARS
    return len(text.encode("utf-16-le")) // 2, SMS_UCS2_CHARS


def sms_split(text: str) -> list[str]:
    """``text`` as messages of one SMS segment each (160 GSM-7 septets, or 70 UCS-2 characters when the
    text holds a character GSM-7 lacks): whole lines where they fit, else cut at word ends (a word longer
    than a segment is cut inside). Costs add up per character, so one pass packs the pieces."""
    text = text.strip()
    gsm = set(text) <= GSM_ALL
    limit = SMS_GSM_CHARS if gsm else SMS_UCS2_CHARS

    def cost(piece: str) -> int:  # a piece's units in the text's encoding (extension characters count two)
        if gsm:
            return 2 * len(piece) - len(piece.translate(_WITHOUT_EXTENDED))
        return len(piece.encode("utf-16-le")) // 2

    def cut(word: str) -> list[str]:  # a word longer than a segment, in pieces that fit
        pieces, current, used = [], "", 0
        for char in word:
            if used + cost(char) > limit:
                pieces.append(current)
                current, used = "", 0
            current, used = current + char, used + cost(char)
        return [*pieces, current]

    def pack(pieces: list[str], separator: str) -> list[str]:
        parts, current, used = [], "", 0
        for piece in pieces:
            size = cost(piece)
            if current and used + 1 + size <= limit:  # the separator is one unit (a space or a newline)
                current, used = f"{current}{separator}{piece}", used + 1 + size
                continue
            if current:
                parts.append(current)
            current, used = piece, size
        return [*parts, current] if current else parts

    lines = [line.strip() for line in text.split("\n") if line.strip()]
    pieces = [
        piece
        for line in lines
        for piece in (
            [line]
            if cost(line) <= limit
            else pack([p for w in line.split() for p in (cut(w) if cost(w) > limit else [w])], " ")
        )
    ]
    return pack(pieces, "\n")


def numbered_options(buttons: Sequence[Button]) -> str:
    """``"Reply 1 for Track an order, 2 for Talk to a person."``"""
    options = ", ".join(f"{number} for {b.title}" for number, b in enumerate(buttons, start=1))
    return f"Reply {options}." if options else ""


def sms_messages(reply: Reply) -> list[str]:
    """The reply as SMS messages: plain text (no Markdown, typographic quotes and arrows made GSM-7),
    the sources (with their links where known), the buttons as numbered options, each message at most one
    segment."""
    lines = [plain_text(reply.text)] if reply.text else []
    for s in reply.sources:
        lines.append(f"Source: {s.label}" + (f" {s.url}" if s.url else ""))
    if reply.image:
        lines.append(reply.image)
    if reply.buttons:
        lines.append(numbered_options(reply.buttons))
    text = "\n".join(line for line in lines if line).translate(SMS_TYPOGRAPHY)
    return sms_split(text)


# --- voice ----------------------------------------------------------------------------------------------

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
ID_TOKEN = re.compile(r"\b(?:[A-Za-z]+-?\d[\w-]*|\d{5,})\b")
ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # fmt: skip
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def spell(token: str) -> str:
    """An id read character by character: ``ORD-10042`` -> ``O R D 1 0 0 4 2``."""
    return " ".join(c for c in token.upper() if c.isalnum())


def _spoken_date(match: re.Match[str]) -> str:
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    return f"{day} {MONTHS[month - 1]} {year}" if 1 <= month <= 12 and 1 <= day <= 31 else match[0]


def speakable(text: str) -> str:
    """Text fit to be spoken: no Markdown or URLs, ISO dates as dates, ids and long numbers spelled out,
    ``#42`` as "number 42", bullets and arrows as pauses."""
    text = MARKDOWN_LINK.sub(lambda m: m["title"], text)
    text = BARE_URL.sub("", text)
    text = plain_text(text)
    text = ISO_DATE.sub(_spoken_date, text)
    text = ID_TOKEN.sub(lambda m: spell(m[0]), text)
    text = re.sub(r"#(\d+)", r"number \1", text)
    text = re.sub(r"^\s*(?:[-*•]|\d+\.)\s+", "", text, flags=re.MULTILINE)
    text = text.replace(LABEL_SEPARATOR, ", ").replace("&", " and ")
    text = re.sub(r"\s*\n+\s*", " ", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    text = re.sub(r"\s{2,}", " ", text).strip()
    return re.sub(r"([^.!?:])$", r"\1.", text) if text else text


def shorten(text: str, max_chars: int) -> str:
    """The first sentences of ``text`` that fit in ``max_chars`` (at least the first sentence)."""
    if len(text) <= max_chars:
        return text
    kept: list[str] = []
    for sentence in SENTENCE_END.split(text):
        if kept and len(" ".join([*kept, sentence])) > max_chars:
            break
        kept.append(sentence)
    return " ".join(kept)


def spoken_options(buttons: Sequence[Button]) -> str:
    """``"Say or press 1 for Track an order, or 2 for Talk to a person."``"""
    if not buttons:
        return ""
    options = [f"{number} for {speakable(b.title).rstrip('.')}" for number, b in enumerate(buttons, start=1)]
    joined = options[0] if len(options) == 1 else ", ".join(options[:-1]) + f", or {options[-1]}"
    return f"Say or press {joined}."


def speech(reply: Reply, max_chars: int = 320) -> str:
    """The reply as what the caller hears: short sentences (at most ``max_chars`` of the text), the source's
    title, then the options."""
    parts = [shorten(speakable(reply.text), max_chars)] if reply.text else []
    if reply.sources:
        parts.append(f"This is from our article {speakable(reply.sources[0].title)}")
    parts.append(spoken_options(reply.buttons))
    return " ".join(p for p in parts if p)


# --- answering buttons by number or title -----------------------------------------------------------------


def _normalised(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", unicodedata.normalize("NFKD", text.lower())).strip()


def _option_number(word: str) -> int | None:
    """``"2"``, ``"two"`` or ``"second"`` -> 2; None for any other word."""
    if word.isdigit():
        return int(word)
    if word in NUMBER_WORDS:
        return NUMBER_WORDS.index(word)
    return ORDINALS.index(word) + 1 if word in ORDINALS else None


OPTION_FILLER = {
    "the",
    "option",
    "number",
    "please",
    "press",
    "i",
    "want",
    "choose",
    "pick",
    "take",
    "its",
    "it",
}


def choose_option(answer: str, buttons: Sequence[Button]) -> Button | None:
    """The button ``answer`` picks: its number (``2``, ``two``, ``the second one``, ``option 2``) or its title
    (the answer names exactly one title); None when it picks none, so the answer goes to the bot as text."""
    words = _normalised(answer).split()
    if not buttons or not words:
        return None
    if any(w in ORDINALS for w in words):  # "the second one": "one" is not a number here
        words = [w for w in words if w != "one"]
    numbers = {_option_number(w) for w in words} - {None}
    only_numbers = all(w in OPTION_FILLER or _option_number(w) is not None for w in words)
    if only_numbers and len(numbers) == 1:
        number = numbers.pop()
        return buttons[number - 1] if number and 1 <= number <= len(buttons) else None
    said = f" {' '.join(words)} "
    titled = [b for b in buttons if _normalised(b.title) and f" {_normalised(b.title)} " in said]
    return titled[0] if len(titled) == 1 else None


def offered_buttons(events: Iterable[Mapping[str, Any]]) -> tuple[Button, ...]:
    """The buttons of the bot's messages since the user's last message (Rasa tracker events as dicts, oldest
    first): the options a number or a title answers now."""
    offered: list[Button] = []
    for event in events:
        kind = event.get("event")
        if kind == "user":
            offered = []
        elif kind == "bot":
            data = event.get("data") or {}
            offered += parse_reply({"buttons": data.get("buttons") or data.get("quick_replies")}).buttons
    return tuple(offered)
