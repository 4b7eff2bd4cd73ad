"""Evaluation summaries from prediction rows: span-level entities, OOS metrics, reports."""

from __future__ import annotations

import csv
import json

import pytest

from nlu import evaluation


def row(text, gold, ranking, predicted=None, entities=(), predicted_entities=(), latency=5.0):
    return {
        "text": text,
        "intent": gold,
        "ranking": ranking,
        "predicted": predicted or ranking[0][0],
        "confidence": ranking[0][1],
        "entities": list(entities),
        "predicted_entities": list(predicted_entities),
        "latency_ms": latency,
    }


def ent(start, end, kind):
    return {"start": start, "end": end, "entity": kind, "value": "v"}


def test_entity_scores_need_the_exact_span_and_type():
    rows = [
        row("a", "x", [("x", 0.9)], entities=[ent(0, 5, "city")], predicted_entities=[ent(0, 5, "city")]),
        row("b", "x", [("x", 0.9)], entities=[ent(0, 5, "city")], predicted_entities=[ent(0, 4, "city")]),
        row("c", "x", [("x", 0.9)], entities=[ent(2, 6, "date")], predicted_entities=[ent(2, 6, "city")]),
    ]
    report = evaluation.entity_report(rows)
    assert report["micro avg"]["precision"] == pytest.approx(1 / 3)
    assert report["micro avg"]["recall"] == pytest.approx(1 / 3)
    assert report["date"]["recall"] == 0.0 and report["city"]["support"] == 2
    assert evaluation.entity_report([row("d", "x", [("x", 1.0)])]) is None


def test_summary_separates_served_answers_from_the_classifier_alone():
    rows = [
        row("hi", "greet", [("greet", 0.9)]),
        row("hmm", "greet", [("greet", 0.3)], predicted="nlu_fallback"),
        row("weather?", "out_of_scope", [("greet", 0.35)], predicted="nlu_fallback"),
        row("poem", "out_of_scope", [("out_of_scope", 0.8)]),
    ]
    metrics = evaluation.summarise(rows)
    assert metrics["intent_accuracy"] == 0.75  # the classifier ranked greet first for "weather?"
    assert metrics["in_scope_accuracy"] == 0.5 and metrics["oos_recall"] == 1.0
    assert metrics["in_scope_accuracy_no_threshold"] == 1.0 and metrics["oos_recall_no_threshold"] == 0.5
    assert metrics["latency_p50_ms"] == 5.0 and "entity_f1" not in metrics


def test_reports_list_misclassified_examples_and_draw_the_matrix(tmp_path):
    rows = [
        row("hi", "greet", [("greet", 0.9), ("thanks", 0.1)]),
        row("thx", "thanks", [("greet", 0.6), ("thanks", 0.4)], entities=[ent(0, 3, "x")]),
    ]
    evaluation.write_reports(rows, tmp_path)
    report = json.loads((tmp_path / "intent_report.json").read_text())
    assert report["thanks"]["recall"] == 0.0 and report["greet"]["precision"] == 0.5
    missed = list(csv.DictReader((tmp_path / "misclassified.csv").open()))
    assert [(m["text"], m["actual"], m["predicted"], m["second"]) for m in missed] == [
        ("thx", "thanks", "greet", "thanks")
    ]
    assert (tmp_path / "intent_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "entity_report.json").read_text())["micro avg"]["recall"] == 0.0


def test_percentile_interpolates():
    assert evaluation.percentile([1, 2, 3, 4], 50) == 2.5
    assert evaluation.percentile([10.0], 95) == 10.0


def test_accuracy_counts_a_prediction_outside_the_test_labels_as_wrong():
    # scikit-learn's report has no "accuracy" row when a predicted label ("z") is not among the test's labels
    rows = [
        row("a", "x", [("x", 0.9)]),
        row("b", "y", [("y", 0.8)]),
        row("c", "y", [("z", 0.3)]),
    ]
    assert evaluation.intent_report(rows)["accuracy"] == pytest.approx(2 / 3)
    assert evaluation.summarise(rows)["intent_accuracy"] == pytest.approx(0.6667)


def test_label_next_puts_the_wrong_first_then_the_least_sure():
    rows = [
        row("sure", "greet", [("greet", 0.9), ("goodbye", 0.05)], predicted="greet"),
        row("close call", "greet", [("greet", 0.5), ("goodbye", 0.45)], predicted="greet"),
        row("wrong", "greet", [("goodbye", 0.7), ("greet", 0.2)], predicted="goodbye"),
        row("oos fallback", "out_of_scope", [("greet", 0.3), ("goodbye", 0.2)], predicted="nlu_fallback"),
    ]
    picked = evaluation.label_next(rows, top=3)
    assert [r["text"] for r in picked] == ["wrong", "close call", "oos fallback"]
    assert picked[0] == {"actual": "greet", "served": "goodbye", "runner_up": "greet", "margin": 0.5,
                         "wrong": True, "text": "wrong"}  # fmt: skip
    assert not picked[2]["wrong"]  # an out-of-scope message that fell back was served right
    assert evaluation.margin(row("one", "greet", [("greet", 0.8)])) == 0.8


def test_calibration_compares_confidence_with_accuracy():
    import math

    rows = [
        row("a", "x", [["x", 0.9], ["y", 0.1]]),  # right at 0.9
        row("b", "y", [["x", 0.9], ["y", 0.1]]),  # wrong at 0.9
        row("c", "y", [["y", 0.6], ["x", 0.4]]),  # right at 0.6
        row("d", "z", [["x", 0.6], ["y", 0.4]]),  # the true intent is not ranked
    ]
    report = evaluation.calibration_report(rows)
    assert report["accuracy"] == 0.5 and report["mean_confidence"] == 0.75
    # bins: 0.9 -> accuracy 0.5 (gap 0.4, 2 rows); 0.6 -> accuracy 0.5 (gap 0.1, 2 rows)
    assert report["ece"] == pytest.approx((2 * 0.4 + 2 * 0.1) / 4)
    expected = (
        -(math.log(0.9) + math.log(0.1) + math.log(0.6) + math.log(evaluation.UNRANKED_PROBABILITY)) / 4
    )
    assert report["nll"] == pytest.approx(expected, abs=1e-4)
    assert [(b["low"], b["n"]) for b in report["bins"]] == [(0.6, 2), (0.9, 2)]
    # a confidence of exactly 1 falls in the last bin
    assert evaluation.calibration_report([row("e", "x", [["x", 1.0]])])["bins"][0]["low"] == 0.9
    with pytest.raises(ValueError, match="no predictions"):
        evaluation.calibration_report([])
