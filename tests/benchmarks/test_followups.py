"""benchmarks/followups.py: bad input is one line and exit code 2; each row counts the follow-ups whose quoted
section is the labelled one, with the topic's vector weighted as the row says. (The run itself: `python
benchmarks/followups.py` on the served index.)"""

from __future__ import annotations

import numpy as np
import pytest

from knowledge.gold import GoldQuestion
from knowledge.retrieval import Lookup
from knowledge.retrievers import Hit
from tests.benchmarks import script_module


@pytest.fixture(scope="module")
def bench():
    yield from script_module("followups")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "gold file not found"),
        ("questions:\n  - {id: a, question: q, kind: direct, doc_ids: [x], section: S}\n", "no follow-up"),
        ("questions:\n  - {id: a, question: q, kind: direct, doc_ids: [x], after: t}\n", "needs the section"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(bench, tmp_path, capsys, text, message):
    path = tmp_path / "followups.yml"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "out.json"
    assert bench.main(["--followups", str(path), "--index", str(tmp_path / "none"), "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("followups: ") and message in err
    assert not out.exists()


#: Two sections of one article, as unit vectors: the topic's answer and the follow-up's.
TOPIC, OWN = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
HITS = [
    Hit("delivery", "Delivery", "Times", "t", 0.9, "c1"),
    Hit("delivery", "Delivery", "Costs", "c", 0.8, "c2"),
]


class FakeKb:
    """Lookups with fixed vectors; the quoted section is the hit whose vector is most similar to the query's."""

    def lookup(self, question: str, tenant: str, top_k: int) -> Lookup:
        # the topic reading leans to the topic's section; the follow-up alone finds nothing of the article
        if " " in question.strip() and question.startswith("How long"):
            return Lookup(question, tenant, HITS, query_vector=0.9 * TOPIC + 0.3 * OWN)
        return Lookup(question, tenant, [Hit("other", "Other", "X", "x", 0.5, "c3")], query_vector=OWN)

    def extract(self, found: Lookup, cut_off: float | None = None):
        vectors = {"Times": TOPIC, "Costs": OWN, "X": OWN}
        best = max(found.hits, key=lambda hit: float(np.dot(vectors[hit.section], found.query_vector)))
        return type("Answer", (), {"sources": [best.source()]})()


def test_each_row_counts_the_labelled_section_quoted(bench):
    question = GoldQuestion(
        "f1", "and what does it cost?", "", ("delivery",), "paraphrase", "acme", sections=("Costs",),
        after="How long does delivery take?",
    )  # fmt: skip
    result = bench.measure(FakeKb(), [question], 3)
    rows = result["rows"]
    assert result["followups"] == 1 and result["labelled_section_retrieved"] == 1.0
    assert rows["alone (no topic; baseline)"] == {"section": 0.0, "article": 0.0}  # another article
    assert rows["with the topic, no focus"] == {"section": 0.0, "article": 1.0}  # the topic's section again
    weighted = {name.removesuffix(" (served)"): row for name, row in rows.items()}
    assert weighted["with the topic, topic weight 0"]["section"] == 1.0  # the follow-up's own words choose
    assert weighted["with the topic, topic weight 2"]["section"] == 0.0
    served = [name for name in rows if name.endswith("(served)")]
    assert len(served) == 1


def test_the_chart_is_a_png(bench, tmp_path):
    result = {
        "followups": 2,
        "labelled_section_retrieved": 0.5,
        "rows": {"a": {"section": 0.5, "article": 1.0}},
    }
    assert bench.plot(result, tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
