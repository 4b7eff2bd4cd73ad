"""Order ids as customers type them: the one pattern and parser of the ``ORD-12345`` format.

The canonical form is ``ORD-`` and five digits (:data:`ORDER_ID_PATTERN`). People write it many ways, and
every reader (the order, refund and problem-report actions, the router's "names an order" check, the answer
cache's "personal question" check, the CRM service's input check, the NLU's regex feature) goes through this
module:

- **explicit** mentions are order ids whatever the conversation is about: the prefix in any case with or
  without a separator (``ORD-20051``, ``ord 20051``, ``ord20161``, ``ORD_20051``), a hash (``#20061``), or
  the word *order* right before the number (``order 20051``, ``order no. 20051``, ``my order number is
  20081``, ``order #20061``);
- a **bare** five-digit number (``20051``) is an order id only in an order conversation (the caller says so:
  the bot asked for the number, or the intent is about an order) or when it is one of the user's own orders
  (the caller passes them);
- **malformed** mentions look like an attempt at an id but are not one: the prefix with anything but five
  digits (``ORD-12``, ``ORD-ABCDE``, ``ORD-2015``, ``ORD-200011``), or ``#``/"order number" with four or six
  digits. The skills ask for a valid number instead of looking anything up.

Amounts (``€20051``, ``20051.50``), phone numbers and numbers glued to letters never count.
Standard library only: the Rasa server (Python 3.10) may import it too.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

#: The canonical form, as stored by the CRM.
ORDER_ID_PATTERN = re.compile(r"^ORD-\d{5}$")
EXAMPLE = "ORD-12345"

_EDGE_BEFORE = r"(?<![\w€£$+.,-])"  # not inside a word, an amount, a phone number or a decimal
_EDGE_AFTER = r"(?![\w-]|[.,]\d)"
_ORDER_WORDS = r"order(?:\s+(?:number|no\.?|nr\.?|num|id|ref(?:erence)?))?(?:\s+is)?"
# One alternative per way of writing an id; each names its body group (the part that should be 5 digits).
_MENTION = re.compile(
    rf"""
    {_EDGE_BEFORE}
    (?:
        ord(?:[-_](?P<ord_sep>[a-z0-9]+)|\s?(?P<ord>\d+))      # ORD-20051, ORD-ABCDE, ord 20051, ord20161
      | \#\s?(?P<hash>\d+)                                     # #20061
      | (?P<words>{_ORDER_WORDS})\s*[:#]?\s*(?P<word>\d+)      # order 20051, my order number is 20081
      | (?P<bare>\d+)                                          # 20051, only in context
    )
    {_EDGE_AFTER}
    """,
    re.IGNORECASE | re.VERBOSE,
)

#: Explicit mentions of a well-formed id (no capturing groups, so ``findall`` returns the mentions as typed;
#: :func:`normalise_order_id` turns each into the canonical form). The router, the answer cache and the test
#: stories use it to tell whether a text names an order.
ORDER_ID_IN_TEXT = re.compile(
    rf"{_EDGE_BEFORE}(?:ord[-_\s]?|\#\s?|{_ORDER_WORDS}\s*[:#]?\s*)\d{{5}}{_EDGE_AFTER}", re.IGNORECASE
)

#: The NLU's regex feature for the ``order_id`` entity (``nlu/data/nlu/regexes.yml`` must hold exactly this;
#: tests/app/test_order_ids.py checks): the prefixed and hashed forms and bare five-digit numbers. Whether a
#: bare number is an id is decided here, in the actions, not by the NLU.
NLU_REGEX = r"(?i)(?<![\w€£$+.,-])(?:ord[-_]?|#)?\d{5}(?![\w-]|[.,]\d)"


@dataclass(frozen=True)
class Mention:
    """One number in a text that may be an order id."""

    typed: str  # as written
    order_id: str | None  # canonical, or None when malformed
    explicit: bool  # prefix, hash or the word "order": an id whatever the context


def mentions(text: str) -> list[Mention]:
    """Every possible order-id mention in ``text``, in order (bare numbers of other lengths left out)."""
    found = []
    for match in _MENTION.finditer(text or ""):
        body = next(match[g] for g in ("ord_sep", "ord", "hash", "word", "bare") if match[g] is not None)
        well_formed = len(body) == 5 and body.isdigit()
        order_id = f"ORD-{body}" if well_formed else None
        if match["bare"] is not None:
            if well_formed:
                found.append(Mention(match[0], order_id, explicit=False))
            continue  # 4 or 6 digits alone: a year, an amount, a quantity
        if (
            match["words"] is not None
            and not well_formed
            and (match["words"].strip().lower() == "order" or not 4 <= len(body) <= 6)
        ):
            continue  # "order 2 items": a quantity, not an attempt at an id
        if match["hash"] is not None and not well_formed and not 4 <= len(body) <= 6:
            continue  # "#1"
        found.append(Mention(match[0], order_id, explicit=True))
    return found


def find_order_ids(text: str, *, order_context: bool = False, known: Collection[str] = ()) -> list[str]:
    """The canonical ids ``text`` names, first mention first, without repeats: explicit mentions always, bare
    five-digit numbers when ``order_context`` (the conversation is about an order) or when the id is in
    ``known`` (the user's own orders)."""
    ids = [
        m.order_id
        for m in mentions(text)
        if m.order_id is not None and (m.explicit or order_context or m.order_id in known)
    ]
    return list(dict.fromkeys(ids))


#: Words a message that only gives an order id may have around it ("and #20372?", "what about ORD-20001",
#: "sorry, my order is ORD-20181", "it's #20061 actually").
_AROUND_AN_ID = frozenset((
    "a", "about", "actually", "again", "also", "and", "another", "but", "it", "it's", "its", "instead", "is",
    "mine", "my", "number", "ok", "okay", "one", "order", "please", "ref", "reference", "same", "so", "sorry",
    "the", "then", "this", "try", "what", "what's", "wait", "yes",
))  # fmt: skip


def only_an_order_id(text: str) -> str | None:
    """The canonical id when ``text`` does nothing but give one explicit order id (a prefix, a hash or the word
    *order*; see the module docstring), possibly with a few filler words around it; else None. A message that
    also asks something ("is #20061 late?", "where is ORD-20001") is not only an id."""
    found = [m for m in mentions(text) if m.explicit]
    if len(found) != 1 or found[0].order_id is None:
        return None
    rest = (text or "").replace(found[0].typed, " ")
    words = re.findall(r"[a-z']+", rest.lower())
    return found[0].order_id if all(word in _AROUND_AN_ID for word in words) else None


def malformed_order_ids(text: str) -> list[str]:
    """Mentions that try to be an order id but are not one (``ORD-12``, ``ORD-ABCDE``, ``#2006``), as typed."""
    return [m.typed.strip() for m in mentions(text) if m.explicit and m.order_id is None]


def normalise_order_id(raw: str) -> str | None:
    """One id as typed (``ord 10042``, ``ORD10042``, ``#10042``, ``order 10042``, ``10042``) ->
    ``ORD-10042``; None when ``raw`` is not exactly one well-formed id."""
    found = mentions((raw or "").strip())
    if len(found) != 1 or found[0].order_id is None or found[0].typed.strip() != (raw or "").strip():
        return None
    return found[0].order_id
