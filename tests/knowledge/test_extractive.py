"""The extractive answer: the passage that answers, quoted so that it stands alone, with its source."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.extractive import MAX_ANSWER_CHARS, ExtractiveAnswerer
from knowledge.rerank import FEATURES, PassageRanker
from knowledge.retrievers import Hit

from .conftest import CountingEmbedding, HashingEmbedding

REFUNDS = Hit(
    "acme-refunds",
    "Refund policy",
    "Who can ask for a refund",
    "Any customer can ask for a refund within 30 days of delivery. Opened software cannot be refunded.",
    0.9,
    chunk_id="c1",
)
SHIPPING = Hit(
    "acme-shipping", "Shipping times", "", "Express delivery arrives the next business day.", 0.5, "c2"
)
PAYMENT = Hit(
    "acme-payment",
    "Payment methods",
    "Online",
    "You can pay for online orders with:\n- **Cards:** Visa and Mastercard.\n- **PayPal.**\n"
    "- **Klarna:** pay in 30 days.\n\nYou can use up to 5 gift cards per order and pay the rest with one other "
    "method.",
    0.8,
    chunk_id="c3",
)
TIMES = Hit(
    "acme-refunds",
    "Refund policy",
    "When the money reaches you",
    "Once the refund is issued, it depends on how you paid:\n\n| Payment method | Time |\n|---|---|\n"
    "| Card | 3–5 business days |\n| PayPal | Within 24 hours |",
    0.7,
    chunk_id="c4",
)


def ask(answerer: ExtractiveAnswerer, question: str, hits: list[Hit]) -> str:
    vector = np.asarray(HashingEmbedding().get_query_embedding(question))
    text, _ = answerer.answer(vector, hits, question)
    return text


def test_a_paragraph_that_fits_is_quoted_whole_with_its_source_and_every_source_is_listed() -> None:
    embed = HashingEmbedding()
    vector = np.asarray(embed.get_query_embedding("ask for a refund within 30 days"))
    text, sources = ExtractiveAnswerer(embed).answer(vector, [REFUNDS, SHIPPING])
    assert text == (
        "Any customer can ask for a refund within 30 days of delivery. Opened software cannot be refunded.\n\n"
        "Source: Refund policy › Who can ask for a refund"
    )
    assert [source["doc_id"] for source in sources] == ["acme-refunds", "acme-shipping"]


def test_a_paragraph_longer_than_the_limit_is_quoted_by_its_best_sentence() -> None:
    embed = HashingEmbedding()
    vector = np.asarray(embed.get_query_embedding("ask for a refund within 30 days"))
    text, _ = ExtractiveAnswerer(embed, max_chars=80).answer(vector, [REFUNDS, SHIPPING])
    assert text == (
        "Any customer can ask for a refund within 30 days of delivery.\n\n"
        "Source: Refund policy › Who can ask for a refund"
    )


def test_a_list_is_quoted_whole_after_its_lead_never_from_its_middle() -> None:
    methods = Hit(PAYMENT.doc_id, PAYMENT.title, PAYMENT.section, PAYMENT.text.split("\n\n")[0], 0.8, "c8")
    text = ask(ExtractiveAnswerer(HashingEmbedding()), "what can you pay for online orders with", [methods])
    assert text == (
        "You can pay for online orders with:\n- Cards: Visa and Mastercard.\n- PayPal.\n- Klarna: pay in 30 days."
        "\n\nSource: Payment methods › Online"
    )


def test_a_table_is_quoted_row_by_row_never_glued_into_one_line() -> None:
    text = ask(ExtractiveAnswerer(HashingEmbedding()), "how long does a refund take", [TIMES])
    assert text.startswith(
        "Once the refund is issued, it depends on how you paid:\n- Card: 3–5 business days\n"
        "- PayPal: Within 24 hours\n\nSource:"
    )


def test_the_rows_the_question_names_are_quoted_with_the_lead_and_a_marker() -> None:
    answerer = ExtractiveAnswerer(HashingEmbedding())
    text = ask(answerer, "how long does a refund to paypal take", [TIMES])
    assert text.startswith(
        "Once the refund is issued, it depends on how you paid:\n- PayPal: Within 24 hours\n"
        "…and 1 more in the article.\n\nSource:"
    )
    # named, but not the row most like the question: the whole table
    whole = ask(answerer, "card business days for paypal", [TIMES])
    assert "- Card: 3–5 business days\n- PayPal: Within 24 hours\n\nSource:" in whole


def test_a_list_too_long_for_chat_is_cut_between_items_the_named_ones_first_with_a_marker() -> None:
    items = "".join(
        f"- **Status {i}:** the order is at stage {i} of a long and winding road.\n" for i in range(9)
    )
    statuses = Hit("acme-orders", "Orders", "Statuses", "Your order shows one of these:\n" + items, 0.9, "c5")
    answerer = ExtractiveAnswerer(HashingEmbedding(), max_chars=200)
    passage = ask(answerer, "what does status 7 mean", [statuses]).split("\n\nSource: ")[0]
    lines = passage.splitlines()
    assert len(passage) <= 200 and lines[0] == "Your order shows one of these:"
    assert "- Status 7: the order is at stage 7 of a long and winding road." in lines  # the item it names
    assert all(line.startswith("- Status ") and line.endswith("road.") for line in lines[1:-1])  # whole items
    assert lines[-1] == f"…and {9 - len(lines[1:-1])} more in the article."


def test_steps_too_long_for_chat_are_cut_only_at_the_end() -> None:
    steps = "".join(f"{i}. Do the thing number {i} carefully and then wait a little.\n" for i in range(1, 9))
    hit = Hit("acme-steps", "Returns", "How to return", steps, 0.9, "c6")
    passage = ask(ExtractiveAnswerer(HashingEmbedding(), max_chars=150), "thing number 6", [hit])
    lines = passage.split("\n\nSource: ")[0].splitlines()
    assert lines[0].startswith("1. Do the thing number 1") and lines[1].startswith("2. ")
    assert lines[-1].startswith("…and ") and lines[-1].endswith(" more in the article.")


def test_a_long_paragraph_is_cut_to_its_best_sentences_with_what_they_refer_back_to() -> None:
    filler = " ".join(f"Filler sentence number {i} talks about something else entirely." for i in range(12))
    text = f"{filler} Gift cards are sold in our stores. They can be topped up at any till. Last words here."
    hit = Hit("acme-gifts", "Gift cards", "Buying", text, 0.9, "c7")
    passage = ask(
        ExtractiveAnswerer(HashingEmbedding(), max_chars=300), "can they be topped up at any till", [hit]
    )
    assert passage.startswith("Gift cards are sold in our stores. They can be topped up at any till.")
    assert "Filler" not in passage


def test_the_ranker_chooses_the_block_and_its_chunk() -> None:
    embed = HashingEmbedding()
    question = "gift cards per order"
    vector = np.asarray(embed.get_query_embedding(question))
    answerer = ExtractiveAnswerer(embed)
    candidates = answerer.candidates(vector, [PAYMENT, REFUNDS], question)
    assert [(c.hit.chunk_id, c.block.kind) for c in candidates] == [
        ("c3", "list"),
        ("c3", "paragraph"),
        ("c1", "paragraph"),
    ]
    assert set(candidates[0].features) == set(FEATURES)
    assert [c.features["chunk_rank"] for c in candidates] == [0.0, 0.0, 1.0]
    # a ranker that only trusts the chunk's rank picks the first block of the first chunk...
    first = PassageRanker(
        features=["chunk_rank", "block_position"], mean=[0, 0], scale=[1, 1], coef=[-5.0, -1.0], intercept=0.0
    )
    assert (
        ExtractiveAnswerer(embed, first)
        .answer(vector, [PAYMENT, REFUNDS], question)[0]
        .startswith("You can pay for online orders with:")
    )
    # ...the default (no fitted ranker) picks the block with the most similar sentence
    assert answerer.answer(vector, [PAYMENT, REFUNDS], question)[0].startswith(
        "You can use up to 5 gift cards"
    )


def test_without_a_query_vector_the_best_chunk_is_quoted_from_its_start() -> None:
    long = Hit("acme-long", "Long", "", "word " * 400, 0.9, chunk_id="c3")
    text, sources = ExtractiveAnswerer(HashingEmbedding()).answer(None, [long])
    passage = text.split("\n\nSource: ")[0]
    assert passage.endswith(" …") and len(passage) <= MAX_ANSWER_CHARS + 2
    assert text.endswith("Source: Long") and sources == [long.source()]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        ExtractiveAnswerer(HashingEmbedding(), max_chars=10)


def test_prepared_passages_are_saved_and_reused_and_a_changed_chunk_is_embedded_again(tmp_path) -> None:
    question = "can I pay with paypal or klarna"
    vector = np.asarray(HashingEmbedding().get_query_embedding(question))
    built = ExtractiveAnswerer(HashingEmbedding())
    built.precompute([PAYMENT, REFUNDS, PAYMENT])
    assert built.save(tmp_path).name == "passages.npz"
    counting = CountingEmbedding()
    counting.seen.clear()
    served = ExtractiveAnswerer(counting)
    assert served.load(tmp_path) == 2
    assert served.answer(vector, [PAYMENT, REFUNDS], question) == built.answer(
        vector, [PAYMENT, REFUNDS], question
    )
    assert counting.seen == []  # every quoted chunk came with its vectors
    edited = Hit(PAYMENT.doc_id, PAYMENT.title, PAYMENT.section, PAYMENT.text + "\n- **Cash.**", 0.8, "c3")
    rebuilt = ExtractiveAnswerer(
        counting
    )  # a process that loads the stored vectors after the article changed
    rebuilt.load(tmp_path)
    rebuilt.answer(vector, [edited], question)  # the stored vectors no longer fit its lines: embedded now
    assert "Cash." in counting.seen
    assert ExtractiveAnswerer(HashingEmbedding()).load(tmp_path / "nothing") == 0


def test_an_item_is_named_by_one_of_its_alternatives_and_a_generic_word_alone_names_none() -> None:
    hit = Hit(
        "acme-refunds", "Refund timing", "When the money reaches you",
        "It depends on how you paid:\n- Visa, Mastercard, Apple Pay: 3–5 business days\n"
        "- PayPal: Within 24 hours\n- Northwind gift card: Credited back immediately\n"
        "- Express delivery: refunded too\n- Standard delivery: refunded in full\n",
        0.9, "c9",
    )  # fmt: skip
    answerer = ExtractiveAnswerer(HashingEmbedding())

    def named(question: str) -> list[str]:
        vector = np.asarray(HashingEmbedding().get_query_embedding(question))
        (candidate,) = answerer.candidates(vector, [hit], question)
        return [candidate.block.lines[i] for i in candidate.named]

    assert named("how long until it's back on my card") == []  # "card" alone: not the gift card
    assert named("is my gift card credited back at once") == [
        "Northwind gift card: Credited back immediately"
    ]
    assert named("I paid with apple pay") == ["Visa, Mastercard, Apple Pay: 3–5 business days"]
    assert named("refund to my visa") == named("refund to my Mastercard") == named("I paid with apple pay")
    assert named("can I pay with anything else") == []  # "pay" alone does not name "Apple Pay"
    assert named("and express?") == ["Express delivery: refunded too"]  # the word that sets it apart
    assert named("what about delivery") == []  # the head word both share


def test_term_features_count_only_the_words_that_name_something() -> None:
    # "what can you do" shares only function words with the heading and the block: no overlap (BM25's short
    # stop-word list keeps them, and the heading "What you can do in our stores" outranked the payment methods)
    stores = Hit(
        "acme-stores", "Stores", "What you can do in our stores",
        "- **Returns:** you can return online orders.\n- **Knife sharpening:** free.", 0.8, "c10",
    )  # fmt: skip
    answerer = ExtractiveAnswerer(HashingEmbedding())
    question = "what can you do with amex"
    vector = np.asarray(HashingEmbedding().get_query_embedding(question))
    for candidate in answerer.candidates(vector, [stores], question):
        assert candidate.features["heading_overlap"] == 0.0 and candidate.features["term_overlap"] == 0.0
    listed = answerer.candidates(vector, [PAYMENT], "do you take amex or paypal")[
        0
    ]  # its list, then a paragraph
    assert listed.features["term_overlap"] == pytest.approx(1 / 3)  # "paypal" of take, amex, paypal


PROTECT = Hit(
    "acme-protect",
    "Northwind Protect",
    "Prices",
    "Northwind Protect is a one-off payment. The price depends on the price of the item:\n\n"
    "| Item price | Northwind Protect |\n|---|---|\n| €50 – €199.99 | €19 |\n| €200 and above | €39 |\n\n"
    "You need one plan per item.",
    0.9,
    chunk_id="c9",
)


def test_a_section_that_fits_is_quoted_whole_in_reading_order_only_when_asked() -> None:
    question = "is it a one-off payment"
    whole = ask(ExtractiveAnswerer(HashingEmbedding(), whole_section=True), question, [PROTECT])
    assert whole == (
        "Northwind Protect is a one-off payment.\n"
        "The price depends on the price of the item:\n- €50 – €199.99: €19\n- €200 and above: €39\n"
        "You need one plan per item.\n\nSource: Northwind Protect › Prices"
    )
    # the default quotes the chosen block alone: the sentence without the prices it announces
    assert ask(ExtractiveAnswerer(HashingEmbedding()), question, [PROTECT]).startswith(
        "Northwind Protect is a one-off payment.\n\nSource:"
    )


def test_a_section_too_long_or_a_question_naming_items_gets_the_chosen_block_alone() -> None:
    # too long for max_chars: the chosen block, as without whole_section
    short = ExtractiveAnswerer(HashingEmbedding(), max_chars=120, whole_section=True)
    assert ask(short, "is it a one-off payment", [PROTECT]).startswith(
        "Northwind Protect is a one-off payment.\n\nSource:"
    )
    # the question names a row of the chosen table: that row answers it, not the whole section
    named = ask(
        ExtractiveAnswerer(HashingEmbedding(), whole_section=True),
        "how long does a refund to paypal take",
        [
            Hit(
                TIMES.doc_id,
                TIMES.title,
                TIMES.section,
                "Refunds are issued by us.\n\n" + TIMES.text,
                0.7,
                "c10",
            )
        ],
    )
    assert named.startswith(  # after the paragraph the section opens with (below)
        "Refunds are issued by us.\nOnce the refund is issued, it depends on how you paid:\n"
        "- PayPal: Within 24 hours\n…and 1 more in the article.\n\nSource:"
    )


def test_a_heading_shared_by_the_blocks_of_a_whole_section_is_written_once() -> None:
    hit = Hit(
        "acme-pw",
        "Passwords",
        "Reset",
        "### The reset link\n1. Click Forgot password.\n2. Open the email.\n\nThe link is valid for 60 minutes.",
        0.9,
        chunk_id="c11",
    )
    text = ask(ExtractiveAnswerer(HashingEmbedding(), whole_section=True), "how do I reset it", [hit])
    assert text.count("The reset link") == 1 and "60 minutes" in text
    assert text.index("1. Click") < text.index("2. Open") < text.index("The link is valid")


HOLIDAYS = Hit(
    "acme-stores",
    "Stores",
    "Holidays",
    "## Holidays\nAll stores are closed on 25 and 26 December. On 24 and 31 December, all stores close at 14:00."
    "\n\nThe local public holidays each store is closed on:\n"
    "- **Berlin:** the public holidays of the state of Berlin, including Good Friday and Reformation Day.\n"
    "- **Amsterdam:** the Dutch public holidays, including King's Day (27 April) and Liberation Day.\n"
    "- **London:** the bank holidays of England, including Good Friday and the summer bank holiday.\n",
    0.9,
    chunk_id="c12",
)


def test_a_list_comes_after_the_paragraphs_its_section_opens_with_when_they_fit() -> None:
    """The opening states the rule the items refine: "london store hours on christmas eve?" names the London
    item, which alone leaves out the 14:00 closing of every store."""
    answerer = ExtractiveAnswerer(HashingEmbedding())
    text = ask(answerer, "london store bank holidays on christmas eve?", [HOLIDAYS])
    assert text == (
        "Holidays\nAll stores are closed on 25 and 26 December. On 24 and 31 December, all stores close at 14:00."
        "\nThe local public holidays each store is closed on:\n"
        "- London: the bank holidays of England, including Good Friday and the summer bank holiday.\n"
        "…and 2 more in the article.\n\nSource: Stores › Holidays"
    )
    # no room for the opening: the list alone, as before
    short = ExtractiveAnswerer(HashingEmbedding(), max_chars=200)
    alone = ask(short, "london store bank holidays on christmas eve?", [HOLIDAYS]).split("\n\nSource:")[0]
    assert alone.startswith("Holidays\nThe local public holidays") and "14:00" not in alone
    # a paragraph is quoted as it was (its own sentences), never with the list after it
    paragraph = ask(answerer, "when do all stores close on 31 December", [HOLIDAYS])
    assert "14:00" in paragraph and "- London" not in paragraph
