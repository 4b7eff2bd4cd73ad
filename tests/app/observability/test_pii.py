"""Masking personal data and credentials (app/observability/pii.py) in realistic messages."""

from __future__ import annotations

import pytest

from app.observability.pii import CARD, EMAIL, IBAN, PHONE, iban_valid, luhn_valid, mask_pii, mask_secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my email is alice.martin@example.com, thanks", f"my email is {EMAIL}, thanks"),
        ("Reach me: j.doe+orders@mail.example.co.uk.", f"Reach me: {EMAIL}."),
        ("ALICE_M@Example.NL", EMAIL),
    ],
)
def test_email_addresses_are_masked(text, expected):
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",  # Visa, groups of four
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",  # Mastercard
        "3782 822463 10005",  # American Express, 4-6-5
        "6011 0009 9013 9424",  # Discover
        "4000 0566 5566 5556",
    ],
)
def test_luhn_valid_card_numbers_are_masked_with_spaces_or_dashes(card):
    assert mask_pii(f"I paid with {card} yesterday") == f"I paid with {CARD} yesterday"


def test_a_card_like_number_that_fails_luhn_is_not_a_card():
    assert not luhn_valid("4111111111111112")
    assert CARD not in mask_pii("reference 4111 1111 1111 1112")


@pytest.mark.parametrize(
    "phone",
    [
        "+49 30 12345678",  # Germany
        "+49 (0)30 1234567",
        "0049 30 12345678",
        "+4915112345678",
        "030 12345678",
        "01711234567",
        "+1 (555) 123-4567",  # North America
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "+44 20 7946 0958",  # United Kingdom
        "+33 1 23 45 67 89",  # France
        "06 12 34 56 78",
        "+31 6 12345678",  # Netherlands
        "+91 98765 43210",  # India
        "+81 3-1234-5678",  # Japan
        "tel:+49-30-1234567",
    ],
)
def test_international_and_national_phone_numbers_are_masked(phone):
    masked = mask_pii(f"call me on {phone} after 5")
    assert masked.startswith("call me on ") and masked.endswith(" after 5")
    assert PHONE in masked and not any(c.isdigit() for c in masked.removesuffix(" after 5"))


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82 WEST 1234 5698 7654 32",
        "NL91ABNA0417164300",
    ],
)
def test_ibans_with_valid_check_digits_are_masked(iban):
    assert iban_valid(iban)
    assert mask_pii(f"refund to {iban} please") == f"refund to {IBAN} please"


@pytest.mark.parametrize(
    "text",
    [
        "Where is my order ORD-10042?",
        "order ORD-30011 shipped 2026-11-26, arriving 2026-12-04 10:00:00",
        "It costs EUR 1,299.00 or 129.99 a month",
        "delivery in 3-5 business days, ticket #42, tier 1",
        "tracking JD014600006201 and 3SNWG0001234",
        "upstream http://127.0.0.1:5005/webhooks/rest/webhook, peer 192.168.100.200",
        "correlation 3f1c2a9b8e7d4c5b9a0f1e2d3c4b5a69, at 10:30:45 on 04.12.2026 (12/04/2026)",
        "rasa 3.6.21, epoch 1733350000",
    ],
)
def test_order_ids_dates_prices_addresses_and_ids_are_left_alone(text):
    assert mask_pii(text) == text


def test_a_message_with_everything_keeps_its_words():
    message = (
        "Hi, I'm Alice (alice@example.com, +44 20 7946 0958). Please refund ORD-10042 "
        "to card 4111-1111-1111-1111 or IBAN DE89 3704 0044 0532 0130 00."
    )
    assert mask_pii(message) == (
        f"Hi, I'm Alice ({EMAIL}, {PHONE}). Please refund ORD-10042 to card {CARD} or IBAN {IBAN}."
    )


def test_bearer_tokens_jwts_and_api_keys_are_masked_but_the_key_id_stays():
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
    key = "sbk_0862f5560c8f_CveU_SfFaWibj9WCi-uadRhWAgMjVtMOSlk1ftq1-78"
    text = f"Authorization: Bearer {token}; token={token}; X-Api-Key: {key}"
    masked = mask_secrets(text)
    assert token not in masked and "CveU_SfFaWibj9WCi" not in masked
    assert masked == ("Authorization: Bearer [secret]; token=[secret]; X-Api-Key: sbk_0862f5560c8f_[secret]")
    for prose in ("a bearer of good news", "Bearer authentication failed: no token"):
        assert mask_secrets(prose) == prose
