"""SMS and voice over HTTP: recorded Twilio webhooks signed with the account's auth token, right and wrong."""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET

import pytest

from tests.app.channels.vendors import recorded, twilio_request, with_fields
from tests.rasa_env.app.channels.conftest import ACCOUNT, SMS_NUMBER, TRANSFER, TWILIO_TOKEN, VOICE_NUMBER

SMS_HOOK, VOICE_HOOK = "/webhooks/twilio/webhook", "/webhooks/twilio_voice/webhook"


def caller() -> str:
    return f"+1555{random.randint(10**6, 10**7 - 1)}"


def text_message(served, body: str, sender: str, token: str = TWILIO_TOKEN, **fields):
    form = with_fields(recorded("twilio_sms.form"), Body=body, From=sender, AccountSid=ACCOUNT, **fields)
    raw, headers = twilio_request(token, f"{served.url}{SMS_HOOK}", form)
    return served.post(SMS_HOOK, raw, headers)


def call(served, recording: str, sender: str, query: str = "", token: str = TWILIO_TOKEN, **fields):
    form = with_fields(recorded(recording), From=sender, Caller=sender, AccountSid=ACCOUNT, **fields)
    path = VOICE_HOOK + query
    raw, headers = twilio_request(token, f"{served.url}{path}", form)
    status, text, _ = served.post(path, raw, headers)
    return status, text


def twiml(text: str) -> ET.Element:
    return ET.fromstring(text)


def said(text: str) -> list[str]:
    return [say.text or "" for say in twiml(text).iter("Say")]


# --- SMS -----------------------------------------------------------------------------------------------------


def test_an_sms_reaches_the_bot_and_the_reply_is_sent_from_the_number_texted(served):
    sender = caller()
    status, text, headers = text_message(served, "hello", sender)
    assert status == 200 and headers["content-type"].startswith("text/xml") and "<Response/>" in text
    [received] = served.agent.received
    assert received.sender_id == f"acme:sms-{sender[1:]}" and received.input_channel == "twilio"
    assert received.metadata["correlation_id"] == "SM1b2c3d4e5f60718293a4b5c6d7e8f9a0"
    [sent] = served.vendors.requests("/twilio/")
    assert sent.path == f"/twilio/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert sent.form() == {"To": sender, "From": SMS_NUMBER, "Body": "Hi! I'm the Northwind Goods assistant."}
    assert sent.headers["Authorization"].startswith("Basic ")


def test_an_sms_reply_has_no_markdown_names_its_source_and_fits_in_segments(served):
    sender = caller()
    text_message(served, "delivery", sender)
    assert served.vendors.sms_to(sender) == [
        "Delivery to Germany takes 2-4 business days.\n"
        "Source: Shipping > Delivery times https://help.northwind.example/search?q=Shipping"
    ]
    text_message(served, "x " * 150, sender)  # echoed back: longer than one segment
    echoed = served.vendors.sms_to(sender)[1:]
    assert len(echoed) == 2 and all(len(part) <= 160 for part in echoed)


def test_options_are_numbered_and_a_number_or_title_answers_them(served):
    sender = caller()
    text_message(served, "menu", sender)
    assert served.vendors.sms_to(sender) == [
        "Sorry, I'm not sure I understood. Did you mean:\nReply 1 for Track an order, 2 for Talk to a person."
    ]
    text_message(served, " 1 ", sender)
    assert served.agent.texts() == ["menu", "/track_order"]
    assert served.agent.received[1].metadata["answered"] == "1"
    text_message(served, "1", sender)  # no options offered now: the number goes to the bot as it is
    assert served.agent.texts()[-1] == "1"
    text_message(served, "menu", sender)
    text_message(served, "talk to a person", sender)
    assert served.agent.texts()[-1] == "/human_handoff"
    assert "ticket #7" in served.vendors.sms_to(sender)[-2]


@pytest.mark.parametrize(
    ("token", "fields", "status", "code"),
    [
        ("wrong-token", {}, 403, "invalid_signature"),
        (TWILIO_TOKEN, {"AccountSid": "ACother"}, 403, "unknown_account"),
        (TWILIO_TOKEN, {"To": "+15550109999"}, 403, "unknown_number"),
        (TWILIO_TOKEN, {"From": "whatsapp:+15557654321"}, 400, "invalid_sender"),
        (TWILIO_TOKEN, {"Body": ""}, 400, "invalid_message"),
        (TWILIO_TOKEN, {"Body": "x" * 2001}, 413, "message_too_long"),
    ],
    ids=["bad-signature", "other-account", "other-number", "not-a-phone", "empty", "too-long"],
)
def test_refused_sms_get_a_clear_4xx_and_reach_no_conversation(served, token, fields, status, code):
    form = with_fields(recorded("twilio_sms.form"), **{"From": caller(), "AccountSid": ACCOUNT, **fields})
    raw, headers = twilio_request(token, f"{served.url}{SMS_HOOK}", form)
    reply_status, text, _ = served.post(SMS_HOOK, raw, headers)
    assert (reply_status, json.loads(text)["error"]) == (status, code)
    assert served.agent.received == [] and served.vendors.seen == []


def test_a_signature_for_another_url_or_a_changed_body_gets_403(served):
    form = with_fields(recorded("twilio_sms.form"), From=caller(), AccountSid=ACCOUNT)
    raw, headers = twilio_request(TWILIO_TOKEN, "https://elsewhere.example/webhooks/twilio/webhook", form)
    assert served.post(SMS_HOOK, raw, headers)[0] == 403
    raw, headers = twilio_request(TWILIO_TOKEN, f"{served.url}{SMS_HOOK}", form)
    assert served.post(SMS_HOOK, raw.replace(b"Body=Hello", b"Body=Hellp"), headers)[0] == 403
    assert served.post(SMS_HOOK, raw, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 403
    assert served.agent.received == []


# --- voice ---------------------------------------------------------------------------------------------------


def test_a_call_is_greeted_and_the_caller_can_interrupt(served):
    sender = caller()
    status, text = call(served, "twilio_voice_incoming.form", sender)
    assert status == 200
    [received] = served.agent.received
    assert (received.text, received.sender_id) == ("hello", f"acme:voice-{sender[1:]}")
    gather = twiml(text).find("Gather")
    assert gather.get("input") == "speech" and gather.get("bargeIn") == "true"
    assert gather.get("action") == VOICE_HOOK and gather.get("actionOnEmptyResult") == "true"
    assert [say.text for say in gather.iter("Say")] == ["Hi! I'm the Northwind Goods assistant."]


def test_replies_are_spoken_without_markdown_or_links_and_ids_are_spelled(served):
    sender = caller()
    _, text = call(served, "twilio_voice_speech.form", sender, SpeechResult="delivery")
    assert said(text) == ["Delivery to Germany takes 2-4 business days. This is from our article Shipping."]
    _, text = call(served, "twilio_voice_speech.form", sender, SpeechResult="/track_order")
    assert said(text) == ["Sure! What's your order number? It looks like O R D 1 2 3 4 5."]


def test_options_are_offered_by_voice_and_answered_by_a_key_or_by_speech(served):
    sender = caller()
    _, text = call(served, "twilio_voice_speech.form", sender, SpeechResult="menu")
    gather = twiml(text).find("Gather")
    assert gather.get("input") == "dtmf speech" and gather.get("numDigits") == "1"
    assert gather.get("hints") == "Track an order, Talk to a person"
    assert said(text)[0].endswith("Say or press 1 for Track an order, or 2 for Talk to a person.")
    form = [(k, v) for k, v in recorded("twilio_voice_speech.form") if k != "SpeechResult"]
    raw, headers = twilio_request(
        TWILIO_TOKEN, f"{served.url}{VOICE_HOOK}", with_fields(form, From=sender, Caller=sender, Digits="1")
    )
    assert served.post(VOICE_HOOK, raw, headers)[0] == 200
    call(served, "twilio_voice_speech.form", sender, SpeechResult="menu")
    call(served, "twilio_voice_speech.form", sender, SpeechResult="The second one.")
    assert served.agent.texts() == ["menu", "/track_order", "menu", "/human_handoff"]


def test_asking_for_a_person_transfers_the_call(served):
    sender = caller()
    _, text = call(served, "twilio_voice_speech.form", sender, SpeechResult="/human_handoff")
    root = twiml(text)
    assert [child.tag for child in root] == ["Say", "Dial", "Say", "Hangup"]
    assert root.find("Dial").text == TRANSFER
    assert root.find("Say").text.startswith("I've opened ticket number 7 for you.")
    assert root.find("Say").text.endswith("Connecting you to a member of our team.")
    _, text = call(served, "twilio_voice_speech.form", sender, SpeechResult="hello again")
    assert twiml(text).find("Dial").text == TRANSFER  # with a person now: every call goes to them


def test_silence_gets_the_last_words_again_then_a_goodbye(served):
    sender = caller()
    call(served, "twilio_voice_speech.form", sender, SpeechResult="hello")
    status, text = call(served, "twilio_voice_silence.form", sender)
    assert status == 200
    assert said(text) == ["Sorry, I didn't catch that.", "Hi! I'm the Northwind Goods assistant."]
    assert twiml(text).find("Gather").get("action") == f"{VOICE_HOOK}?reprompts=1"
    _, text = call(served, "twilio_voice_silence.form", sender, query="?reprompts=1")  # max_reprompts: 1
    assert [child.tag for child in twiml(text)] == ["Say", "Hangup"]
    assert served.agent.texts() == ["hello"]  # silence is no turn


@pytest.mark.parametrize(
    ("token", "fields", "query", "status", "code"),
    [
        ("wrong-token", {}, "", 403, "invalid_signature"),
        (TWILIO_TOKEN, {"AccountSid": "ACother"}, "", 403, "unknown_account"),
        (TWILIO_TOKEN, {"To": "+15550109999"}, "", 403, "unknown_number"),
        (TWILIO_TOKEN, {"From": "anonymous"}, "", 400, "invalid_sender"),
        (TWILIO_TOKEN, {"SpeechResult": "x" * 2001}, "", 413, "message_too_long"),
        (TWILIO_TOKEN, {}, "?reprompts=many", 400, "invalid_query"),
    ],
    ids=["bad-signature", "other-account", "other-number", "anonymous", "too-long", "bad-query"],
)
def test_refused_calls_get_a_clear_4xx_and_reach_no_conversation(served, token, fields, query, status, code):
    form = with_fields(
        recorded("twilio_voice_speech.form"), **{"From": caller(), "AccountSid": ACCOUNT, **fields}
    )
    raw, headers = twilio_request(token, f"{served.url}{VOICE_HOOK}{query}", form)
    reply_status, text, _ = served.post(VOICE_HOOK + query, raw, headers)
    assert (reply_status, json.loads(text)["error"]) == (status, code)
    assert served.agent.received == []


def test_the_voice_channel_needs_a_transfer_number():
    from app.channels.voice import VoiceChannel

    with pytest.raises(ValueError, match="transfer_number"):
        VoiceChannel.from_credentials(
            {
                "account_sid": ACCOUNT,
                "auth_token": "t",
                "public_url": "https://x",
                "numbers": {VOICE_NUMBER: "acme"},
            }
        )


def test_numbers_must_be_e164():
    from app.channels.sms import SmsChannel

    with pytest.raises(ValueError, match="E.164"):
        SmsChannel.from_credentials(
            {
                "account_sid": ACCOUNT,
                "auth_token": "t",
                "public_url": "https://x",
                "numbers": {"5550100": "acme"},
            }
        )
    assert re.match(r"^\+\d+$", SMS_NUMBER)


def test_blank_fields_are_signed_too(served):
    """Twilio signs every field, blank ones included (Sanic's own form parser would drop them)."""
    sender = caller()
    status, _, _ = text_message(served, "hello", sender, FromZip="", ToCity="")
    assert status == 200 and served.agent.texts() == ["hello"]


def test_a_body_that_is_not_a_form_gets_415(served):
    status, text, _ = served.post(SMS_HOOK, b'{"Body": "hi"}', {"Content-Type": "application/json"})
    assert (status, json.loads(text)["error"]) == (415, "unsupported_media_type")


def test_a_failure_to_handle_an_sms_is_a_500_and_sends_nothing(served):
    status, text, _ = text_message(served, "boom", caller())
    assert (status, json.loads(text)["error"]) == (500, "internal_error")
    assert served.vendors.requests("/twilio/") == []
