"""The semantic cache's second check: what must agree between a question and a cached one."""

from __future__ import annotations

import numpy as np
import pytest

from app.cache import SemanticMatcher, SemanticSettings
from app.cache.agreement import AgreementRules, disagreements, entities, lexical_similarity, negated, numbers


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # different questions that embeddings place close together
        ("How do I cancel order ORD-10042?", "How do I cancel order ORD-10043?", ["numbers", "entities"]),
        ("Can I return shoes after 30 days?", "Can I return shoes after 60 days?", ["numbers"]),
        ("Can I return shoes after 30 days?", "Can I return shoes?", ["numbers"]),
        ("Is the store open on Sunday?", "Is the store not open on Sunday?", ["negation"]),
        ("Why was I charged twice?", "Why wasn't I charged?", ["negation"]),
        (
            "How do I enable two-factor authentication?",
            "How do I disable two-factor authentication?",
            ["contrast"],
        ),
        ("How do I upload a file?", "How do I download a file?", ["contrast"]),
        ("What are the fees for express shipping?", "What are the fees for standard shipping?", ["contrast"]),
        ("Do you ship to Germany?", "Do you ship to France?", ["entities"]),
        ("Is `num_rows` the row count?", "Is `num_columns` the row count?", ["entities"]),
        # paraphrases that must stay hits
        ("How long does delivery to Germany take?", "How many days until my parcel arrives in Germany?", []),
        ("How do I reset my password?", "I forgot my password, how can I reset it?", []),
        (
            "No, the file is not needed.",
            "The file is not required.",
            [],
        ),  # a leading "No," is an answer particle
        ("1. Create the dataset 2. Push it", "Create the dataset, then push it", []),  # list markers
        ("Version 2.10.0 adds streaming.", "Streaming arrived in v2.10.0.", []),
        (
            "Hugging Face Hub hosts models.",
            "The Hub hosts models.",
            [],
        ),  # one side drops a name: no substitution
    ],
)
def test_disagreements(a: str, b: str, expected: list[str]) -> None:
    assert disagreements(a, b) == expected
    assert disagreements(b, a) == expected  # symmetric


def test_long_passages_skip_the_negation_check() -> None:
    long_a = "The method " + "reads the data and " * 10 + "does not copy it."
    long_b = "The method " + "reads the data and " * 10 + "avoids a copy."
    assert disagreements(long_a, long_b) == []
    assert disagreements(long_a, long_b, AgreementRules(negation_max_words=100)) == ["negation"]


def test_checks_can_be_switched_off_and_pairs_added() -> None:
    rules = AgreementRules(check_numbers=False)
    assert disagreements("after 30 days", "after 60 days", rules) == []
    custom = AgreementRules().with_pairs([["gold", "silver"]])
    assert disagreements("gold membership perks", "silver membership perks", custom) == ["contrast"]
    with pytest.raises(ValueError, match="pairs of words"):
        AgreementRules().with_pairs([["only-one"]])


def test_extractors() -> None:
    assert numbers("Order ORD-10042 costs 1,299.50 EUR, 2) ship") == {"10042", "1299.50"}
    assert negated("I can't log in") and negated("never arrived") and not negated("No, it arrived.")
    assert entities("Do you ship to Germany via DHL or `express_v2`?") == {"germany", "dhl", "express_v2"}
    assert entities("Germany is far") == frozenset()  # a sentence's first word is not a name by its case
    assert lexical_similarity("a b c", "c b a") == 1.0 and lexical_similarity("abc", "xyz") == 0.0


def _vectors(*cosines: float) -> tuple[np.ndarray, np.ndarray]:
    """A query vector and candidate vectors with exactly these cosines to it."""
    query = np.array([1.0, 0.0], dtype=np.float32)
    rows = [[c, float(np.sqrt(max(0.0, 1 - c * c)))] for c in cosines]
    return query, np.array(rows, dtype=np.float32)


def test_a_closer_entry_that_disagrees_blocks_the_runner_up() -> None:
    matcher = SemanticMatcher(SemanticSettings(threshold=0.75, margin=0.02, lexical_weight=0.0, pool=0.05))
    texts = ["Can I return shoes after 30 days?", "Are returns of sandals possible after 60 days?"]
    query, vectors = _vectors(0.95, 0.80)
    match = matcher.match("Can I return shoes after 60 days?", query, texts, vectors)
    assert match.index is None and "closer entry disagrees (numbers)" in match.reason
    # the disagreeing entry far below the best agreeing one does not block it
    query, vectors = _vectors(0.76, 0.95)
    assert matcher.match("Can I return shoes after 60 days?", query, texts, vectors).index == 1


def test_the_matcher_explains_its_misses() -> None:
    matcher = SemanticMatcher(SemanticSettings(threshold=0.75, margin=0.02, lexical_weight=0.0, pool=0.05))
    query, vectors = _vectors(0.5)
    assert "below threshold" in matcher.match("q", query, ["other"], vectors).reason
    query, vectors = _vectors(0.9, 0.89)
    assert matcher.match(
        "where is it", query, ["where is it now", "where is it then"], vectors
    ).reason.startswith("ambiguous")
    query, vectors = _vectors(0.9)
    assert "disagree" in matcher.match("after 30 days", query, ["after 60 days"], vectors).reason
    assert matcher.match("q", query, [], np.zeros((0, 2))).reason == "empty cache"
