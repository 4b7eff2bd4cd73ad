"""Knowledge failure analysis of the per-question rows (knowledge/failures.py), read back from the CSV the
evaluation writes."""

from __future__ import annotations

import csv
from pathlib import Path

from knowledge.failures import OUTCOMES, article_report, outcome, read_per_question


def q(id_: str, relevant: str, ranked: str, answered: bool, rr: str = "") -> dict:
    return {"id": id_, "kind": "faq", "tenant": "acme", "question": f"question {id_}", "answerable": bool(relevant),
            "relevant": relevant, "ranked": ranked, "hit_at_1": "", "rr": rr, "confidence": "0.5",
            "answered": answered}  # fmt: skip


def write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_each_question_gets_one_outcome_and_articles_are_ranked_weakest_first(tmp_path):
    rows = read_per_question(
        write(
            tmp_path / "per_question.csv",
            [
                q("right", "refunds", "refunds;shipping", True, "1.0"),
                q("idk", "refunds", "refunds", False, "1.0"),
                q("taken", "returns", "refunds;returns", True, "0.5"),
                q("wrong", "returns", "shipping", True, "0.0"),
                q("weather", "", "shipping", True),
                q("refused", "", "", False),
            ],
        )
    )
    assert rows[0]["relevant"] == ["refunds"] and rows[0]["ranked"] == ["refunds", "shipping"]
    assert rows[0]["answerable"] is True and rows[4]["answerable"] is False and rows[4]["rr"] is None
    assert [outcome(r) for r in rows] == [
        OUTCOMES[0],
        OUTCOMES[1],
        OUTCOMES[2],
        OUTCOMES[2],
        OUTCOMES[3],
        OUTCOMES[4],
    ]
    report = article_report(rows)
    assert [a["article"] for a in report] == ["returns", "refunds"]
    assert report[0] == {"article": "returns", "questions": 2, "answered_right": 0.0, "unanswered": 0,
                         "wrong_article": 2, "mrr": 0.25, "taken_by": "refunds (1), shipping (1)"}  # fmt: skip
    assert report[1]["answered_right"] == 0.5 and report[1]["unanswered"] == 1
