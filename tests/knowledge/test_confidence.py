"""Answerability: features, the logistic model, its fit on dev questions, cut-off and curves."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.calibration import finalizer
from knowledge.confidence import (
    MODEL_FEATURES,
    AnswerabilityModel,
    DenseScoreModel,
    Example,
    fit,
    load_model,
    precision_recall_curve,
    roc_auc,
    suggest_cut_off,
)
from knowledge.evaluation import GoldQuestion
from knowledge.index import build_index, read_manifest
from knowledge.retrieval import KnowledgeBase

from .conftest import HashingEmbedding


def question(qid: str, text: str, doc_ids: tuple[str, ...] = (), tenant: str = "acme") -> GoldQuestion:
    return GoldQuestion(qid, text, "", doc_ids, "direct" if doc_ids else "unanswerable", tenant)


DEV = [
    question("a1", "Who can ask for a refund within 30 days?", ("acme-refunds",)),
    question("a2", "refunds original payment method business days", ("acme-refunds",)),
    question("a3", "standard delivery business days express", ("acme-shipping",)),
    question("a4", "tracking link in the order confirmation email", ("acme-shipping",)),
    question("a5", "globex refund zebra code", ("globex-refunds",), tenant="globex"),
    question("u1", "platypus aquarium subscription"),
    question("u2", "quantum chromodynamics lattice"),
    question("u3", "volcano hiking permit"),
    question("u4", "saxophone lessons for beginners"),
]


def test_features_describe_one_retrieval(built, sources: Path, embed_model: HashingEmbedding) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=embed_model, llm=None)
    known = kb.answerability_features("refund within 30 days of delivery", "acme")
    unknown = kb.answerability_features("platypus aquarium subscription", "acme")
    assert set(known) >= set(MODEL_FEATURES)
    assert known["unknown"] == 0.0 and unknown["unknown"] == 1.0
    assert known["dense_top"] > unknown["dense_top"]
    assert known["coverage"] == 1.0 and unknown["coverage"] == 0.0
    assert known["agreement"] == 1.0
    hidden = kb.answerability_features(
        "refund within 30 days of delivery", "acme", exclude_docs=["acme-refunds"]
    )
    assert hidden["dense_top"] < known["dense_top"]
    assert kb.answerability_features("", "acme")["dense_top"] == 0.0


def test_the_logistic_model_is_a_probability_and_round_trips(tmp_path: Path) -> None:
    rows = [
        Example(f"p{i}", {"dense_top": 0.6 + i / 100, "dense_margin": 0.1, "unknown": 0.0}, True)
        for i in range(10)
    ]
    rows += [
        Example(f"n{i}", {"dense_top": 0.2 + i / 100, "dense_margin": 0.0, "unknown": 0.8}, False)
        for i in range(10)
    ]
    model = fit(rows, max_false_idk=0.1)
    high, low = (
        model.predict(rows[9].values),
        model.predict(rows[-1].values),
    )  # best answerable, worst unanswerable
    assert 0.5 < high < 1.0 and 0.0 < low < 0.5
    assert model.info["dev_questions"] == 20 and model.info["dev_unanswerable"] == 10
    assert low < model.info["suggested_min_score"] < high
    model.save(tmp_path)
    again = load_model(tmp_path)
    assert isinstance(again, AnswerabilityModel) and again.predict(rows[3].values) == pytest.approx(
        model.predict(rows[3].values)
    )
    assert isinstance(load_model(tmp_path / "none"), DenseScoreModel)
    with pytest.raises(ValueError, match="answerable and unanswerable"):
        fit(rows[:10])


def test_the_suggested_cut_off_refuses_at_most_the_allowed_share() -> None:
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    answerable = [True] * 10
    assert suggest_cut_off(scores, answerable, 0.0) == pytest.approx(0.0499)  # refuse none
    assert suggest_cut_off(scores, answerable, 0.1) == pytest.approx(0.075)  # refuse one (0.05)
    assert suggest_cut_off(scores, answerable, 0.25) == pytest.approx(0.15)  # refuse two


def test_precision_recall_curve_and_auc() -> None:
    scores = [0.9, 0.8, 0.3, 0.2, 0.6]
    answerable = [True, True, False, False, True]
    assert roc_auc(scores, answerable) == 1.0
    assert roc_auc([0.5, 0.5], [True, False]) == 0.5
    assert roc_auc([0.5], [True]) is None
    points = {p["cut_off"]: p for p in precision_recall_curve(scores, answerable, [0.0, 0.25, 0.5, 0.85])}
    assert points[0.0] == {"cut_off": 0.0, "precision": None, "recall": 0.0}
    assert points[0.25] == {"cut_off": 0.25, "precision": 1.0, "recall": 0.5}
    assert points[0.5] == {"cut_off": 0.5, "precision": 1.0, "recall": 1.0}
    assert points[0.85]["precision"] == pytest.approx(2 / 4)  # refuses 0.8 and 0.6 too


def test_the_build_fits_the_model_on_dev_questions(sources: Path, embed_model: HashingEmbedding) -> None:
    index_dir = sources.parent / "index"
    build_index(
        sources,
        index_dir,
        256,
        32,
        embed_model,
        show_progress=False,
        finalize=finalizer(DEV, embed_model, fusion="relative", dense_weight=0.6),
    )
    manifest = read_manifest(index_dir)
    assert manifest["retrieval"] == {"fusion": "relative", "dense_weight": 0.6}
    assert manifest["answerability"]["kind"] == "logistic"
    assert manifest["answerability"]["dev_questions"] == len(DEV)
    assert 0.0 < manifest["answerability"]["suggested_min_score"] < 1.0
    kb = KnowledgeBase.load(index_dir, embed_model=embed_model, llm=None)
    assert kb.answerability.kind == "logistic" and kb.fusion == ("relative", 0.6)
    cut = manifest["answerability"]["suggested_min_score"]
    assert kb.answer("Who can ask for a refund within 30 days?", "acme", top_k=3, min_score=cut).answered
    assert not kb.answer("platypus aquarium subscription", "acme", top_k=3, min_score=cut).answered


def test_without_dev_questions_the_build_keeps_the_dense_score(
    sources: Path, embed_model: HashingEmbedding
) -> None:
    build_index(
        sources,
        sources.parent / "index",
        256,
        32,
        embed_model,
        show_progress=False,
        finalize=finalizer(None, embed_model),
    )
    assert read_manifest(sources.parent / "index")["answerability"] == {"kind": "dense_score"}
    assert not (sources.parent / "index" / "answerability.json").exists()
