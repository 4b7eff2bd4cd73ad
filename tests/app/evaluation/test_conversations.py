"""The conversation file: a clear one-line error naming file, conversation and turn for every problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.evaluation.conversations import ConversationFileError, domain_intents, load

ROOT = Path(__file__).resolve().parents[3]

GOOD = {
    "version": 1,
    "customers": [
        {"tenant": "acme", "user": "dana", "name": "Dana", "email": "d@example.com",
         "orders": [{"id": "ORD-20001", "status": "shipped", "total": "9.90", "eta": "2026-12-10"}]},
    ],
    "conversations": [
        {"id": "greet-then-order", "tenant": "acme", "user": "dana", "tags": ["chitchat", "order"],
         "turns": [
             {"user": "hi", "expect": {"handler": "chitchat", "intent": "greet"}},
             {"user": "where is ORD-20001", "expect": {"handler": "skill", "intent": "track_order",
                                                        "says": "shipped"}},
         ]},
        {"id": "fallback-click", "tenant": "globex", "user": "erin", "tags": ["fallback"],
         "turns": [
             {"user": "blorp", "expect": {"handler": "fallback", "intent": "nlu_fallback", "buttons": True}},
             {"click": 1, "expect": {"handler": "knowledge", "source": ["globex-billing"]}},
             {"user": "bonjour, où est ma commande ?", "expect": {"handler": "language"}},
             {"agent": "hello"},
         ]},
    ],
}  # fmt: skip


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "conversations.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True) if not isinstance(data, str) else data)
    return path


def mutate(change) -> dict:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    change(data)
    return data


def test_a_good_file_loads_and_slices(tmp_path):
    data = load(write(tmp_path, GOOD), intents=domain_intents(ROOT / "nlu" / "domain.yml"))
    assert [c.id for c in data.conversations] == ["greet-then-order", "fallback-click"]
    assert data.scored_turns == 5
    assert data.conversations[0].turns[1].expect.says == ("shipped",)  # one string becomes a list
    assert [c.id for c in data.select(tags=["fallback"]).conversations] == ["fallback-click"]
    assert [c.id for c in data.select(limit=1).conversations] == ["greet-then-order"]
    assert data.select(ids=["nope"]).conversations == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["conversations"][1]["turns"][0]["expect"].update(handler="two_stage_fallback"),
            "conversation fallback-click, turn 1: expect.handler: unknown handler 'two_stage_fallback'",
        ),
        (
            lambda d: d["conversations"][0]["turns"][1]["expect"].pop("intent"),
            "conversation greet-then-order, turn 2: expect.intent is required for a user turn",
        ),
        (
            lambda d: d["conversations"][0]["turns"][0]["expect"].update(intent="greeting"),
            "conversation greet-then-order, turn 1: unknown intent 'greeting'",
        ),
        (
            lambda d: d["conversations"][1]["turns"][3].update(expect={"handler": "chitchat"}),
            "conversation fallback-click, turn 4: a agent turn has no bot reply to expect anything of",
        ),
        (
            lambda d: d["conversations"][0]["turns"][0].pop("expect"),
            "conversation greet-then-order, turn 1: a user turn needs `expect`",
        ),
        (
            lambda d: d["conversations"][0]["turns"][0].update(click=2),
            "conversation greet-then-order, turn 1: a turn is exactly one of user, click, agent, hand_back",
        ),
        (
            lambda d: d["conversations"][1].update(id="greet-then-order"),
            "conversation greet-then-order: the id is used twice",
        ),
        (
            lambda d: d["conversations"][1]["turns"].insert(0, {"click": 1, "expect": {"handler": "skill"}}),
            "conversation fallback-click, turn 1: a click must follow a turn the bot answered",
        ),
        (
            lambda d: d["customers"][0]["orders"][0].update(id="ORD-12"),
            "customer #1: orders.id: String should match pattern",
        ),
        (
            lambda d: d["conversations"][0]["turns"][0]["expect"].update(colour="blue"),
            "conversation greet-then-order, turn 1: expect.colour: Extra inputs are not permitted",
        ),
    ],
)
def test_every_problem_is_one_line_naming_the_place(tmp_path, change, message):
    path = write(tmp_path, mutate(change))
    with pytest.raises(ConversationFileError) as caught:
        load(path, intents=domain_intents(ROOT / "nlu" / "domain.yml"))
    text = str(caught.value)
    assert "\n" not in text and text.startswith(str(path)) and message in text, text


def test_unknown_sources_and_broken_yaml(tmp_path):
    with pytest.raises(ConversationFileError, match="turn 2: unknown source globex-billing"):
        load(write(tmp_path, GOOD), doc_ids=["delivery-times"])
    with pytest.raises(ConversationFileError, match=r"line \d+ not valid YAML"):
        load(write(tmp_path, "version: 1\nconversations: [\n  {id: x,\n"))
    with pytest.raises(ConversationFileError, match="cannot read it"):
        load(tmp_path / "missing.yml")
