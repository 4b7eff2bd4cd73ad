"""Questions, requests and their forms (app/actions/phrasing.py)."""

from __future__ import annotations

import pytest

from app.actions.phrasing import asks_whether_offered


@pytest.mark.parametrize(
    ("text", "offered"),
    [
        ("is there a discount for teachers?", True),
        ("do you have a cheaper social tariff for pensioners?", True),
        ("ok, is there any discount for new customers then?", True),
        ("Do you offer gift wrapping?", True),
        ("does globex have an app for the apple watch", True),
        ("Do you sell electric bikes?", True),
        ("are there any fees for paying by card?", True),
        ("how do I get a discount?", False),  # how, not whether
        ("can you ship a thermostat to my holiday home in belgium?", False),
        ("Do I get a receipt when I buy something in a store?", False),
        ("do you have any idea where my order is", False),  # an order question
        ("there is a problem with my order", False),
    ],
)
def test_a_question_whether_something_is_offered_at_all(text: str, offered: bool) -> None:
    assert asks_whether_offered(text) is offered
