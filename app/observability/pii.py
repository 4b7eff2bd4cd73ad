"""Mask personal data and credentials in text we keep: log lines and what the analytics store records.

:func:`mask_pii` replaces e-mail addresses (``[email]``), payment card numbers (``[card]``: 13-19 digits,
spaces or dashes between groups, Luhn-valid), IBANs (``[iban]``: the ISO 13616 check digits must hold) and
phone numbers (``[phone]``: international ``+49 30 1234567`` / ``0049 ...``, national numbers of at least
nine digits in groups such as ``030 12345678`` or ``(555) 123-4567``, and bare ``01711234567``; a bare run
of digits without the trunk prefix 0 is left alone, as ids and timestamps look the same). Checksums and
these rules keep order ids, prices, dates, times, IP addresses and hex ids as they are. :func:`mask_secrets`
replaces bearer tokens, JWTs and our API keys (the key id stays: it is public).

Standard library only (the Rasa environment may use it too). Patterns, not a named-entity model: they catch
the formats people type; names, addresses and numbers written in words are not caught.
"""

from __future__ import annotations

import re
from collections.abc import Callable

EMAIL = "[email]"
CARD = "[card]"
IBAN = "[iban]"
PHONE = "[phone]"

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
# 13-19 digits, single spaces or dashes allowed between digits
_CARD = re.compile(r"(?<![\w+-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![\w])")
# An optional international prefix, then digit groups separated by a space, dash, dot or slash, the area code
# possibly in parentheses. Candidates are checked by :func:`_is_phone`.
_PHONE = re.compile(
    r"(?<![\w+./-])(?:(?:\+|00)\s?)?(?:\(\d{1,5}\)|\d{1,5})(?:[ .\-/]?(?:\(\d{1,5}\)|\d{1,5})){1,7}(?![\w])"
)
_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}|^\d{1,2}[-./]\d{1,2}[-./]\d{4}")
_DOTTED_QUAD = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")

# a token: 16+ token characters, one at least a digit or punctuation (so "bearer authentication" stays)
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?=[A-Za-z0-9._~+/=-]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{16,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_API_KEY = re.compile(r"\b(sbk_[0-9a-f]{12}_)[A-Za-z0-9_-]{20,}")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment cards carry one)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers, the whole mod 97 is 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _is_card(match: re.Match[str]) -> bool:
    digits = _digits(match[0])
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


def _is_phone(match: re.Match[str]) -> bool:
    text = match[0].strip()
    digits = _digits(text)
    if _DATE.match(text) or _DOTTED_QUAD.match(text):
        return False
    international = text.startswith(("+", "00"))
    separated = bool(re.search(r"[ .\-/()]", text))
    if international:
        return 8 <= len(digits) <= 15
    if separated:  # national numbers written in groups
        return 9 <= len(digits) <= 15
    # a bare run of digits is more often an id or a timestamp, unless it starts with a trunk prefix 0
    return text.startswith("0") and 10 <= len(digits) <= 12


def _replace(
    pattern: re.Pattern[str], label: str, keep: Callable[[re.Match[str]], bool]
) -> Callable[[str], str]:
    def apply(text: str) -> str:
        return pattern.sub(lambda m: label if keep(m) else m[0], text)

    return apply


_MASKERS = (
    _replace(_EMAIL, EMAIL, lambda m: True),
    _replace(_IBAN, IBAN, lambda m: iban_valid(m[0])),
    _replace(_CARD, CARD, _is_card),
    _replace(_PHONE, PHONE, _is_phone),
)


def mask_pii(text: str) -> str:
    """``text`` with e-mail addresses, card numbers, IBANs and phone numbers replaced (see the module)."""
    if not text or not any(c.isdigit() or c == "@" for c in text):
        return text
    for mask in _MASKERS:
        text = mask(text)
    return text


def mask_secrets(text: str) -> str:
    """``text`` with bearer tokens, JWTs and the secret part of our API keys replaced by ``[secret]``."""
    if not text:
        return text
    text = _BEARER.sub(lambda m: f"{m[1]}[secret]", text)
    text = _JWT.sub("[secret]", text)
    return _API_KEY.sub(lambda m: f"{m[1]}[secret]", text)
