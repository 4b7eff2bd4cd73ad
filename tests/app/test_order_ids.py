"""Order ids as people type them: the one parser (app/order_ids.py) and the NLU regex that must agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from app.order_ids import (
    NLU_REGEX,
    ORDER_ID_IN_TEXT,
    find_order_ids,
    malformed_order_ids,
    normalise_order_id,
    only_an_order_id,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "explicit", "in_context"),
    [
        ("can you check order 20051", ["ORD-20051"], ["ORD-20051"]),
        ("#20061", ["ORD-20061"], ["ORD-20061"]),
        ("status ord 20071 pls", ["ORD-20071"], ["ORD-20071"]),
        ("ord20161 status?", ["ORD-20161"], ["ORD-20161"]),
        ("my order number is 20081", ["ORD-20081"], ["ORD-20081"]),
        ("order no. 20081 and order #20061", ["ORD-20081", "ORD-20061"], ["ORD-20081", "ORD-20061"]),
        ("ORD-20201 and ORD-20202, where are they?", ["ORD-20201", "ORD-20202"], ["ORD-20201", "ORD-20202"]),
        ("20051", [], ["ORD-20051"]),  # a bare number counts only in an order conversation
        ("I paid €20051", [], []),  # an amount
        ("it was 20051.50 in total", [], []),
        ("call me on +49 151 23456789", [], []),
        ("I'd like to order 2 more", [], []),
        ("record 12345", [], ["ORD-12345"]),
        ("track ORD-12", [], []),
    ],
)
def test_ids_as_people_type_them(text, explicit, in_context):
    assert find_order_ids(text) == explicit
    assert find_order_ids(text, order_context=True) == in_context


def test_a_bare_number_that_is_one_of_the_users_orders_counts():
    assert find_order_ids("what about 20051?", known={"ORD-20051"}) == ["ORD-20051"]
    assert find_order_ids("what about 20052?", known={"ORD-20051"}) == []


@pytest.mark.parametrize(
    ("text", "malformed"),
    [
        ("track ORD-12", ["ORD-12"]),
        ("ORD-ABCDE", ["ORD-ABCDE"]),
        ("sorry its ORD-2015", ["ORD-2015"]),
        ("status of ORD-200011?", ["ORD-200011"]),
        ("my order number is 2008", ["order number is 2008"]),
        ("ORD-20151", []),
        ("order 2 items", []),
        ("in 2026", []),
    ],
)
def test_malformed_ids_are_told_apart(text, malformed):
    assert malformed_order_ids(text) == malformed


def test_normalise_takes_exactly_one_id():
    assert normalise_order_id("order 10042") == "ORD-10042"
    assert normalise_order_id("#10042") == "ORD-10042"
    assert normalise_order_id("ORD-10042 and ORD-10043") is None
    assert normalise_order_id("ORD-1004") is None


def test_order_id_in_text_finds_explicit_mentions_only():
    assert [normalise_order_id(m) for m in ORDER_ID_IN_TEXT.findall("is #20061 or ord 20071 here?")] == [
        "ORD-20061",
        "ORD-20071",
    ]
    assert ORDER_ID_IN_TEXT.search("deliver to 10115 Berlin") is None


def test_the_nlu_regex_file_holds_the_one_definition():
    data = yaml.safe_load((ROOT / "nlu" / "data" / "nlu" / "regexes.yml").read_text())
    (block,) = [b for b in data["nlu"] if b.get("regex") == "order_id"]
    assert [line[2:] for line in block["examples"].splitlines()] == [NLU_REGEX]
    nlu = re.compile(NLU_REGEX)
    for typed in ("ORD-20051", "ord20161", "#20061", "20051"):
        assert nlu.search(f"it is {typed} thanks"), typed
    assert not nlu.search("it was €20051.50") and not nlu.search("ORD-200011")


@pytest.mark.parametrize(
    ("text", "order_id"),
    [
        ("#20061", "ORD-20061"),
        ("and #20372?", "ORD-20372"),
        ("what about ORD-20001", "ORD-20001"),
        ("sorry my order is ORD-20181", "ORD-20181"),
        ("it's ord 20051 actually", "ORD-20051"),
        ("is #20061 late?", None),  # asks something about it
        ("where is ORD-20001", None),
        ("my order ORD-20051 arrived damaged", None),
        ("20061", None),  # a bare number is an id only in an order conversation: the NLU's inform decides
        ("ORD-12", None),  # malformed: the skills ask again
        ("#20061 and #20062", None),  # two ids: not one to act on
    ],
)
def test_a_message_that_only_gives_an_order_id(text: str, order_id: str | None) -> None:
    assert only_an_order_id(text) == order_id
