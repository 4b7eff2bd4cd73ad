"""The one response model and its rendering for each medium (app/channels/rendering.py)."""

from __future__ import annotations

import pytest

from app.channels.rendering import (
    Button,
    Reply,
    Source,
    choose_option,
    offered_buttons,
    parse_reply,
    slack_message,
    sms_cost,
    sms_messages,
    sms_split,
    speakable,
    speech,
    teams_activity,
    web_markdown,
)

LINK = "https://help.example/search?q={title}&section={section}&id={slug}"
OPTIONS = [
    {"title": "Track an order", "payload": "/track_order"},
    {"title": "Talk to a person", "payload": "/human_handoff"},
]
EXTRACTIVE = {
    "text": "Delivery to **Germany** takes 2-4 days.\n\nSource: Shipping & delivery › Delivery times"
}
LLM = {"text": "Returns are free [1]. Refunds take 5 days [2].\n\nSources: [1] Returns › Window; [2] Refunds"}


def test_a_knowledge_answer_parses_into_text_and_sources_with_links():
    reply = parse_reply(EXTRACTIVE, LINK)
    assert reply.text == "Delivery to **Germany** takes 2-4 days."
    assert reply.sources == (
        Source(
            "Shipping & delivery › Delivery times",
            "https://help.example/search?q=Shipping%20%26%20delivery&section=Delivery%20times&id=shipping-delivery",
        ),
    )
    llm = parse_reply(LLM)
    assert [s.label for s in llm.sources] == ["Returns › Window", "Refunds"]
    assert all(s.url is None for s in llm.sources)  # no template: no link


def test_buttons_quick_replies_links_and_images_are_parsed():
    reply = parse_reply(
        {"text": "See [our page](https://x.example/a) or https://y.example/b.", "buttons": OPTIONS}
    )
    assert reply.buttons == (
        Button("Track an order", "/track_order"),
        Button("Talk to a person", "/human_handoff"),
    )
    assert reply.links == ("https://x.example/a", "https://y.example/b")
    assert parse_reply({"quick_replies": OPTIONS[:1]}).buttons == (Button("Track an order", "/track_order"),)
    assert parse_reply({"image": "https://x.example/i.png"}).image == "https://x.example/i.png"
    assert parse_reply({"text": "  "}).empty and not parse_reply({"buttons": OPTIONS}).empty


def test_only_a_last_line_starting_with_source_is_the_sources():
    for text in ("Our sources: many.\nMore text", "Text.\nSource: X\nmore", "Source:no space"):
        reply = parse_reply({"text": text})
        assert (reply.text, reply.sources) == (text, ())


def test_the_web_shows_sources_as_links():
    assert web_markdown(parse_reply(EXTRACTIVE, "https://help.example/{slug}")) == (
        "Delivery to **Germany** takes 2-4 days.\n\n"
        "Source: [Shipping & delivery › Delivery times](https://help.example/shipping-delivery)"
    )
    assert (
        web_markdown(parse_reply(LLM))
        == "Returns are free [1]. Refunds take 5 days [2].\n\nSources: Returns › Window; Refunds"
    )


def test_slack_gets_mrkdwn_actions_and_a_context_block():
    message = slack_message(parse_reply({**EXTRACTIVE, "buttons": OPTIONS}, LINK))
    assert message["text"] == "Delivery to Germany takes 2-4 days."
    section, actions, context = message["blocks"]
    assert section["text"] == {"type": "mrkdwn", "text": "Delivery to *Germany* takes 2-4 days."}
    assert [e["value"] for e in actions["elements"]] == ["/track_order", "/human_handoff"]
    assert len({e["action_id"] for e in actions["elements"]}) == 2
    assert context["elements"][0]["text"].startswith("Source: <https://help.example/search?q=Shipping")
    assert slack_mrkdwn_escapes()


def slack_mrkdwn_escapes() -> bool:
    blocks = slack_message(Reply(text="a < b & [c](https://c.example)"))["blocks"]
    return blocks[0]["text"]["text"] == "a &lt; b &amp; <https://c.example|c>"


def test_slack_splits_long_texts_and_many_buttons_within_block_kit_limits():
    many = [{"title": f"Option {n} " + "x" * 90, "payload": f"/o{n}"} for n in range(30)]
    message = slack_message(parse_reply({"text": "word " * 1500, "buttons": many}))
    sections = [b for b in message["blocks"] if b["type"] == "section"]
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    assert len(sections) == 3 and all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert [len(a["elements"]) for a in actions] == [25, 5]
    assert all(len(e["text"]["text"]) <= 75 for a in actions for e in a["elements"])


def test_teams_gets_markdown_and_message_back_actions():
    activity = teams_activity(parse_reply({**EXTRACTIVE, "buttons": OPTIONS}))
    assert activity["textFormat"] == "markdown" and activity["text"].endswith(
        "Source: Shipping & delivery › Delivery times"
    )
    buttons = activity["attachments"][0]["content"]["buttons"]
    assert buttons[1] == {
        "type": "messageBack",
        "title": "Talk to a person",
        "text": "/human_handoff",
        "displayText": "Talk to a person",
    }
    assert "attachments" not in teams_activity(Reply(text="hi"))


def test_sms_is_plain_text_with_numbered_options_in_segments():
    assert sms_messages(parse_reply({**EXTRACTIVE, "buttons": OPTIONS})) == [
        "Delivery to Germany takes 2-4 days.\nSource: Shipping & delivery > Delivery times\n"
        "Reply 1 for Track an order, 2 for Talk to a person."
    ]
    assert sms_messages(parse_reply({"text": "# Heading\nSee [the page](https://x.example)."})) == [
        "Heading\nSee the page: https://x.example."
    ]


@pytest.mark.parametrize(
    ("text", "segment"),
    [("plain ascii " * 40, 160), ("with € and [brackets] " * 20, 160), ("Grüße 你好 " * 30, 70)],
    ids=["gsm", "gsm-extended", "ucs2"],
)
def test_sms_parts_each_fit_one_segment_and_keep_every_word(text, segment):
    parts = sms_split(text)
    assert len(parts) > 1
    for part in parts:
        used, limit = sms_cost(part)
        assert used <= limit == segment
    assert " ".join(parts).split() == text.split()


def test_sms_cost_counts_gsm_extension_characters_twice():
    assert sms_cost("€") == (2, 160) and sms_cost("a") == (1, 160) and sms_cost("✓") == (1, 70)
    assert sms_split("x" * 161) == ["x" * 160, "x"]


def test_speech_has_no_markdown_or_urls_and_spells_ids_and_dates():
    spoken = speakable(
        "**Order** ORD-10042 shipped on 2026-12-20, see https://x.example. Ticket #42.\n- fast"
    )
    assert spoken == "Order O R D 1 0 0 4 2 shipped on 20 December 2026, see. Ticket number 42. fast."
    assert "http" not in spoken and "*" not in spoken


def test_speech_is_short_names_the_source_and_offers_numbered_options():
    long = {"text": "One sentence here. " * 40 + "\n\nSource: Shipping › Delivery times", "buttons": OPTIONS}
    spoken = speech(parse_reply(long), max_chars=60)
    assert spoken == (
        "One sentence here. One sentence here. One sentence here. This is from our article Shipping. "
        "Say or press 1 for Track an order, or 2 for Talk to a person."
    )


@pytest.mark.parametrize(
    ("answer", "payload"),
    [
        ("2", "/human_handoff"),
        (" 1. ", "/track_order"),
        ("two", "/human_handoff"),
        ("The second one.", "/human_handoff"),
        ("option 1 please", "/track_order"),
        ("Talk to a person", "/human_handoff"),
        ("I want to track an order", "/track_order"),
        ("3", None),
        ("one or two", None),
        ("yes", None),
        ("where is ORD-12", None),
        ("", None),
    ],
)
def test_a_number_or_a_title_picks_an_option(answer, payload):
    chosen = choose_option(answer, parse_reply({"buttons": OPTIONS}).buttons)
    assert (chosen.payload if chosen else None) == payload


def test_the_options_offered_are_those_since_the_users_last_message():
    events = [
        {"event": "bot", "text": "old", "data": {"buttons": [{"title": "Old", "payload": "/old"}]}},
        {"event": "user", "text": "menu"},
        {"event": "bot", "text": "Did you mean:", "data": {"buttons": OPTIONS}},
        {"event": "action", "name": "action_listen"},
    ]
    assert [b.payload for b in offered_buttons(events)] == ["/track_order", "/human_handoff"]
    assert offered_buttons([*events, {"event": "user", "text": "1"}]) == ()
