"""BioEntityExtractor's completion by lookup tables and regexes (nlu/components/bio_entities.py)."""

from __future__ import annotations

import re

from nlu.components.bio_entities import with_patterns

PATTERNS = [
    ("payment_method", re.compile(r"(\bapple pay\b|\bpay pal\b|\bvisa\b)", re.IGNORECASE)),
    ("product", re.compile(r"(\bsmart plug\b|\bkettle\b)", re.IGNORECASE)),
]


def entity(text: str, value: str, kind: str) -> dict:
    start = text.index(value)
    return {"entity": kind, "start": start, "end": start + len(value), "value": value}


def test_a_match_nothing_tagged_is_added_and_one_over_a_tagged_part_replaces_it():
    text = "do you take Apple Pay for the kettle?"
    found = with_patterns([entity(text, "Apple", "payment_method")], PATTERNS, text)
    assert [(e["value"], e["entity"]) for e in found] == [
        ("Apple Pay", "payment_method"),
        ("kettle", "product"),
    ]
    assert all(text[e["start"] : e["end"]] == e["value"] for e in found)


def test_the_heads_span_wins_over_a_match_of_another_type_or_a_shorter_match():
    text = "my visa card and the smart plug model X"
    head = [entity(text, "visa card", "product"), entity(text, "smart plug model X", "product")]
    assert (
        with_patterns(head, PATTERNS, text) == head
    )  # another type; a match inside a longer span of its type


def test_no_patterns_no_change():
    text = "where is my tent"
    head = [entity(text, "tent", "product")]
    assert with_patterns(head, [], text) == head and with_patterns([], [], text) == []
