"""Answerability: the features of one retrieval, the models that turn them into a confidence."""

from __future__ import annotations

from pathlib import Path

from knowledge.confidence import MODEL_FEATURES, AnswerabilityModel, DenseScoreModel, load_model
from knowledge.retrieval import KnowledgeBase

from .conftest import HashingEmbedding


def test_features_describe_one_retrieval(built, sources: Path, embed_model: HashingEmbedding) -> None:
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=embed_model)
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
    # "so", "now", "just" and "again" are in no article, but they are not what a question is about: only its
    # content words count (grounding's stop words left out), so filler does not make a question look unanswerable
    chatty = kb.answerability_features("so now just a refund within 30 days of delivery again?", "acme")
    assert chatty["unknown"] == 0.0
    assert kb.answerability_features("now a platypus subscription?", "acme")["unknown"] == 1.0


def test_the_dense_score_model_and_a_logistic_model_predict_a_confidence(tmp_path: Path) -> None:
    assert DenseScoreModel().predict({"dense_top": 0.42}) == 0.42
    model = AnswerabilityModel(features=["unknown"], mean=[0.5], scale=[0.25], coef=[-2.0], intercept=0.0)
    assert model.predict({"unknown": 0.5}) == 0.5
    assert 0.0 < model.predict({"unknown": 1.0}) < 0.5 < model.predict({"unknown": 0.0}) < 1.0
    model.save(tmp_path)
    again = load_model(tmp_path)
    assert isinstance(again, AnswerabilityModel) and again.predict({"unknown": 1.0}) == model.predict(
        {"unknown": 1.0}
    )
    assert isinstance(load_model(tmp_path / "none"), DenseScoreModel)
