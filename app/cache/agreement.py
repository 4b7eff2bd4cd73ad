"""The semantic cache's second check: two questions close in embedding space must also agree on the details
that change an answer, and a lexical score to rank near-equal candidates.

Embeddings put "Can I return shoes after 30 days?" and "... after 60 days?" at cosine 0.95, "How do I enable
two-factor authentication?" and "... disable ..." at 0.88, "Is the store open on Sunday?" and "Is the store not
open on Sunday?" at 0.97. :func:`disagreements` names what differs:

- ``numbers``: the sets of numbers (amounts, days, ids such as ORD-10042, versions) must be equal; list
  markers ("1.", "2)") do not count;
- ``negation``: both say "not" or neither does (texts up to ``negation_max_words`` words: in long passages
  polarity is paraphrased too freely to compare);
- ``contrast``: one says a word and the other its opposite (enable/disable, upload/download, before/after...);
- ``entities``: each names an entity (a capitalised name, an ALLCAPS token or a code identifier) that the other
  does not mention: a substitution such as Germany -> France.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

#: Opposites that embeddings place close together; extendable with ``cache.semantic.contrast_pairs``.
CONTRAST_PAIRS: tuple[tuple[str, str], ...] = (
    ("enable", "disable"), ("activate", "deactivate"), ("upload", "download"), ("add", "remove"),
    ("include", "exclude"), ("before", "after"), ("increase", "decrease"), ("import", "export"),
    ("open", "close"), ("start", "stop"), ("subscribe", "unsubscribe"), ("lock", "unlock"),
    ("buy", "sell"), ("accept", "reject"), ("min", "max"), ("minimum", "maximum"), ("input", "output"),
    ("encode", "decode"), ("encrypt", "decrypt"), ("first", "last"), ("login", "logout"),
    ("allow", "deny"), ("show", "hide"), ("connect", "disconnect"), ("install", "uninstall"),
    ("public", "private"), ("internal", "external"), ("inbound", "outbound"), ("express", "standard"),
    ("domestic", "international"), ("refund", "charge"), ("cheapest", "fastest"), ("earliest", "latest"),
)  # fmt: skip

NEGATORS = frozenset(
    {"not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "cannot"}
)

_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
_NUMBER = re.compile(r"\d+(?:[.,_:/]\d+)*")
_LIST_MARKER = re.compile(r"(?:^|(?<=\s))\(?\d{1,2}[.)](?=\s)")
_ANSWER_PARTICLE = re.compile(r"^\s*(?:yes|no)\s*[,.!]", re.IGNORECASE)
_TOKEN = re.compile(r"`[^`]+`|[A-Za-z][\w'’.-]*\w|[A-Za-z]")
_CODE_LIKE = re.compile(r"_|[a-z][A-Z]|\.\w")
_SENTENCE_END = ".!?:\n"


def _words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def numbers(text: str) -> frozenset[str]:
    """Numbers in ``text`` (thousands separators and underscores removed), list markers excluded."""
    return frozenset(
        n.replace(",", "").replace("_", "") for n in _NUMBER.findall(_LIST_MARKER.sub(" ", text))
    )


def negated(text: str) -> bool:
    """Whether ``text`` contains a negation (a leading "No," answer particle does not count)."""
    return any(w in NEGATORS or w.endswith("n't") for w in _words(_ANSWER_PARTICLE.sub("", text)))


def entities(text: str) -> frozenset[str]:
    """Lower-cased names in ``text``: capitalised words not starting a sentence, ALLCAPS tokens, code
    identifiers (`backticked`, snake_case, camelCase, dotted.names)."""
    found = set()
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token.startswith("`"):
            found.add(token.strip("`").lower())
            continue
        before = text[: match.start()].rstrip()
        sentence_start = not before or before[-1] in _SENTENCE_END
        if (
            _CODE_LIKE.search(token)
            or (token[0].isupper() and not sentence_start)
            or (len(token) > 1 and token.isupper())
        ):
            found.add(token.lower().rstrip("."))
    return frozenset(found)


@dataclass(frozen=True)
class AgreementRules:
    """Which checks run, and their settings."""

    check_numbers: bool = True
    check_negation: bool = True
    check_contrast: bool = True
    check_entities: bool = True
    negation_max_words: int = 25
    contrast_pairs: tuple[tuple[str, str], ...] = CONTRAST_PAIRS

    def with_pairs(self, extra: Iterable[Iterable[str]]) -> AgreementRules:
        pairs = tuple(tuple(p) for p in extra)
        if any(len(p) != 2 or not all(isinstance(w, str) and w for w in p) for p in pairs):
            raise ValueError(f"contrast pairs must be pairs of words, not {pairs!r}")
        return AgreementRules(
            self.check_numbers, self.check_negation, self.check_contrast, self.check_entities,
            self.negation_max_words, self.contrast_pairs + tuple((a.lower(), b.lower()) for a, b in pairs),
        )  # fmt: skip


@lru_cache(maxsize=16)
def _opposites(pairs: tuple[tuple[str, str], ...]) -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for a, b in pairs:
        table.setdefault(a, set()).add(b)
        table.setdefault(b, set()).add(a)
    return {k: frozenset(v) for k, v in table.items()}


def _word_forms(text: str) -> set[str]:
    words = _words(text)
    return set(words) | {_stem(w) for w in words}


def disagreements(a: str, b: str, rules: AgreementRules = AgreementRules()) -> list[str]:  # noqa: B008
    """Names of the checks on which ``a`` and ``b`` disagree (empty: they agree)."""
    found = []
    if rules.check_numbers and numbers(a) != numbers(b):
        found.append("numbers")
    if rules.check_negation:
        limit = rules.negation_max_words
        if len(_words(a)) <= limit and len(_words(b)) <= limit and negated(a) != negated(b):
            found.append("negation")
    if rules.check_contrast:
        forms_a, forms_b = _word_forms(a), _word_forms(b)
        opposites = _opposites(rules.contrast_pairs)
        if any(opposites.get(w, frozenset()) & (forms_b - forms_a) for w in forms_a - forms_b):
            found.append("contrast")
    if rules.check_entities:
        lower_a, lower_b = a.lower(), b.lower()
        if any(e not in lower_b for e in entities(a)) and any(e not in lower_a for e in entities(b)):
            found.append("entities")
    return found


def lexical_similarity(a: str, b: str) -> float:
    """Word-order-insensitive string similarity in [0, 1] (rapidfuzz's token sort ratio)."""
    return fuzz.token_sort_ratio(a.lower(), b.lower()) / 100.0
