"""Article structure: Markdown sections as paragraphs, lists and tables, each quotable on its own."""

from __future__ import annotations

from knowledge.passages import LIST, PARAGRAPH, TABLE, Block, lead_continued, parse_blocks, segments, units

SECTION = """\
You can pay for online orders with:
- **Cards:** Visa and Mastercard.
- **PayPal.**
- SEPA bank transfer (prepayment), which ships once the money has arrived and takes
  1–2 business days to arrive.

The methods shown at checkout depend on your country. Examples of delivery times:

| Destination | Standard | Price |
|---|---|---|
| Germany | 1–2 business days | €4.95 |
| United Kingdom | 3–5 business days | €7.95 |

### Steps
1. Sign in.

2. Open **My orders**.
```
## not a heading
```
"""


def test_a_lead_sentence_and_the_list_or_table_it_introduces_are_one_block() -> None:
    blocks = parse_blocks(SECTION)
    assert [block.kind for block in blocks] == [LIST, PARAGRAPH, TABLE, LIST, PARAGRAPH]
    payment, country, table = blocks[:3]
    assert payment.lead == "You can pay for online orders with:"
    assert payment.lines == (
        "Cards: Visa and Mastercard.",
        "PayPal.",
        "SEPA bank transfer (prepayment), which ships once the money has arrived and takes 1–2 business days to "
        "arrive.",  # a continuation line belongs to its item
    )
    # the paragraph's last sentence leads the table; its first sentence stays a paragraph of its own
    assert country.lines == ("The methods shown at checkout depend on your country.",) and not country.lead
    assert table.lead == "Examples of delivery times:"


def test_table_rows_become_chat_lines_with_their_columns_named() -> None:
    table = parse_blocks(SECTION)[2]
    assert table.lines == (
        "Germany — Standard: 1–2 business days; Price: €4.95",
        "United Kingdom — Standard: 3–5 business days; Price: €7.95",
    )
    assert table.keys == ("Germany", "United Kingdom")
    two = parse_blocks("| Payment | Time |\n|---|---|\n| PayPal | Within 24 hours |\n| Klarna | At once |")
    assert two[0].lines == ("PayPal: Within 24 hours", "Klarna: At once")


def test_list_items_are_keyed_by_their_label() -> None:
    payment = parse_blocks(SECTION)[0]
    assert payment.keys == ("Cards", "PayPal", "")  # the third item has no label
    plain = parse_blocks("- Standard delivery: 3–5 days.\n- A sentence that is not a label at all, and long.")
    assert plain[0].keys == ("Standard delivery", "")


def test_headings_give_context_and_numbered_lists_are_steps() -> None:
    steps, code = parse_blocks(SECTION)[3:]
    assert steps.heading == "Steps" and steps.ordered and steps.lines == ("Sign in.", "Open My orders.")
    assert steps.render() == "Steps\n1. Sign in.\n2. Open My orders."  # a blank line inside a list keeps it
    assert code.lines == ("## not a heading",) and code.heading == "Steps"  # code is kept verbatim


def test_no_block_renders_a_lead_or_heading_without_what_follows_it() -> None:
    blocks = parse_blocks(SECTION + "\nThis closes it. Nothing follows this:\n")
    for block in blocks:
        rendered = block.render()
        assert rendered.strip() and not rendered.rstrip().endswith(":")
    assert blocks[-1].lines == ("This closes it.",)  # the dangling lead-in is left out, not quoted
    assert parse_blocks("Only an introduction:") == []


def test_a_list_cut_short_says_how_many_more_the_article_has() -> None:
    block = Block(LIST, ("one", "two", "three"), lead="Choose:")
    assert block.render([2]) == "Choose:\n- three\n…and 2 more in the article."
    assert block.render() == "Choose:\n- one\n- two\n- three"
    steps = Block(LIST, ("Sign in.", "Open it."), ordered=True)
    assert steps.render([1]) == "2. Open it.\n…and 1 more in the article."  # steps keep their numbers


def test_lead_paragraphs_stay_with_their_segment_for_chunking() -> None:
    groups = units(segments(SECTION))
    assert [[segment.kind for segment in group] for group in groups] == [
        [PARAGRAPH, LIST],
        [PARAGRAPH, TABLE],
        [LIST],
        [PARAGRAPH],
    ]
    table = groups[1][1]
    assert table.head[0].startswith("| Destination") and len(table.items) == 2
    assert lead_continued("Examples of delivery times:") == "Examples of delivery times (continued):"
