"""Fitting the answerability model on dev questions: the fit, its cut-off, its cross-validated AUC, the build step."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from knowledge.calibration import (
    MIN_TENANT_ANSWERABLE,
    Example,
    cross_validated_auc,
    describe_cut_offs,
    finalizer,
    fit,
    suggest_cut_off,
    tenant_cut_offs,
)
from knowledge.confidence import AnswerabilityModel, DenseScoreModel, load_model
from knowledge.gold import GoldQuestion, GoldSetError
from knowledge.index import build_index, read_manifest
from knowledge.metrics import roc_auc
from knowledge.rerank import PassageRanker, SimilarityRanker
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


def test_a_tenant_whose_answerable_questions_score_lower_gets_a_lower_cut_off() -> None:
    n = MIN_TENANT_ANSWERABLE
    rows = [Example(f"a{i}", {}, True, tenant="acme") for i in range(n)]
    rows += [Example(f"g{i}", {}, True, tenant="globex") for i in range(n)]
    rows += [Example(f"s{i}", {}, True, tenant="small") for i in range(n - 1)]
    rows += [Example("u", {}, False, tenant="acme")]
    scores = [0.5 + i / 100 for i in range(n)]  # acme: answerable questions score 0.5 and up
    scores += [0.1 + i / 100 for i in range(n)]  # globex: 0.1 and up
    scores += [0.6] * (n - 1) + [
        0.05
    ]  # a tenant with too few questions for a line of its own; the unanswerable
    overall = suggest_cut_off(scores, [row.answerable for row in rows], 0.05)
    lowered = tenant_cut_offs(rows, scores, 0.05, overall)
    # globex's own line refuses at most 5 % of its answerable questions; acme's own line would be higher than
    # the overall one, so acme keeps the overall line (never raised); "small" has too few questions
    assert lowered == {"globex": suggest_cut_off(scores[n : 2 * n], [True] * n, 0.05)}
    assert lowered["globex"] < 0.1 + 1 / 100 < overall
    assert sum(s < lowered["globex"] for s in scores[n : 2 * n]) <= 0.05 * n


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
    # measured on held-out folds (4: the dev set has 4 unanswerable questions), never on the fitted rows
    assert manifest["answerability"]["cv_folds"] == 4 and manifest["answerability"]["cv_seed"] == 0
    assert (
        0.0 <= manifest["answerability"]["dev_cv_auc"] <= 1.0 and "dev_auc" not in manifest["answerability"]
    )
    kb = KnowledgeBase.load(index_dir, embed_model=embed_model)
    assert kb.answerability.kind == "logistic" and kb.fusion == ("relative", 0.6)
    cut = manifest["answerability"]["suggested_min_score"]
    # one globex question: too few for a line of its own, so every tenant has the overall one
    assert (
        manifest["answerability"]["tenant_min_scores"] == {} and kb.cut_off_for("globex") == cut == kb.cut_off
    )
    assert kb.answer("Who can ask for a refund within 30 days?", "acme", top_k=3, cut_off=cut).answered
    assert not kb.answer("platypus aquarium subscription", "acme", top_k=3, cut_off=cut).answered


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
    assert read_manifest(sources.parent / "index")["passage_ranker"] == {"kind": "unit_similarity"}
    kb = KnowledgeBase.load(sources.parent / "index", embed_model=embed_model)
    assert isinstance(kb.extractive.ranker, SimilarityRanker)


SECTIONS = {
    "a1": ("Who can ask for a refund",),
    "a2": ("How refunds are paid",),
    "a3": ("Delivery times",),
    "a4": ("Tracking a parcel",),
}
LABELLED = [replace(q, sections=SECTIONS.get(q.id, ())) for q in DEV]


def test_the_build_fits_the_passage_ranker_on_labelled_dev_questions(
    sources: Path, embed_model: HashingEmbedding
) -> None:
    index_dir = sources.parent / "index"
    passages = {"max_chars": 300, "chunks": 2, "whole_section": True, "ranker_c": 0.5}
    build_index(
        sources, index_dir, 256, 32, embed_model, show_progress=False,
        finalize=finalizer(LABELLED, embed_model, passages=passages),
    )  # fmt: skip
    manifest = read_manifest(index_dir)
    # the answer's settings travel with it
    assert manifest["passages"] == {"max_chars": 300, "chunks": 2, "whole_section": True}
    ranker = manifest["passage_ranker"]
    assert ranker["kind"] == "passage_logistic" and ranker["c"] == 0.5 and ranker["labelled_questions"] == 5
    assert 0.0 <= ranker["baseline_top1"] <= 1.0 and 0.0 <= ranker["candidate_recall"] <= 1.0
    assert (index_dir / "passage_ranker.json").is_file()
    kb = KnowledgeBase.load(index_dir, embed_model=embed_model)
    assert isinstance(kb.extractive.ranker, PassageRanker)
    assert (kb.extractive.max_chars, kb.extractive.chunks, kb.extractive.whole_section) == (300, 2, True)
    assert kb.extractive.load(index_dir) == len(kb.chunks)  # every chunk's passages embedded at build time


@pytest.mark.parametrize(
    ("label", "message"),
    [({"sections": ("Nope",)}, "'Nope'"), ({"passages": ("not in the section",)}, "'not in the section'")],
)
def test_a_dev_label_its_article_does_not_have_stops_the_build(
    sources: Path, embed_model: HashingEmbedding, label: dict, message: str
) -> None:
    dev = [replace(LABELLED[0], **label), *LABELLED[1:]]
    with pytest.raises(GoldSetError, match=f"dev question 'a1' names unknown section or passage {message}"):
        build_index(
            sources, sources.parent / "index", 256, 32, embed_model, show_progress=False,
            finalize=finalizer(dev, embed_model),
        )  # fmt: skip


def noise_rows(n: int, unanswerable: int, seed: int = 7) -> list[Example]:
    """Rows whose features say nothing about the label: a fit can only memorise them."""
    rng = random.Random(seed)
    return [
        Example(
            f"q{i}",
            {name: rng.gauss(0, 1) for name in ("dense_top", "dense_margin", "unknown")},
            i >= unanswerable,
        )
        for i in range(n)
    ]


def test_the_cross_validated_auc_scores_rows_the_model_was_not_fitted_on() -> None:
    rows = noise_rows(40, 20)
    model = fit(rows)
    in_sample = roc_auc([model.predict(r.values) for r in rows], [r.answerable for r in rows])
    auc, folds = cross_validated_auc(rows, seed=42)
    assert folds == 5 and auc is not None
    assert in_sample > 0.6 and auc < in_sample - 0.1  # memorised noise does not carry to held-out rows
    assert cross_validated_auc(rows, seed=42) == (auc, folds)  # the seed fixes the folds
    separable = [
        Example(f"s{i}", {"dense_top": i / 10, "dense_margin": 0.0, "unknown": 0.0}, i >= 5)
        for i in range(10)
    ]
    assert cross_validated_auc(separable, seed=1) == (1.0, 5)


def test_the_folds_shrink_to_the_smaller_class_and_need_two() -> None:
    assert cross_validated_auc(noise_rows(12, 3), seed=0)[1] == 3
    assert cross_validated_auc(noise_rows(12, 1), seed=0) == (None, 0)


def test_the_served_cut_offs_name_the_tenants_own_lines_the_same_way_in_both_stages() -> None:
    from knowledge.index import BuildReport
    from pipelines.build_index import _summary
    from pipelines.evaluate_rag import _cut_offs

    assert describe_cut_offs(0.2941, {"globex": 0.0285}) == "0.2941 (globex 0.0285)"
    assert describe_cut_offs(0.3, {}) == describe_cut_offs(0.3, None) == "0.3"
    assert _cut_offs({"cut_off": 0.2941, "tenant_cut_offs": {"globex": 0.0285}}) == "0.2941 (globex 0.0285)"
    answerability = {
        "kind": "logistic",
        "dev_questions": 120,
        "cv_folds": 5,
        "dev_cv_auc": 0.9,
        "suggested_min_score": 0.2941,
        "tenant_min_scores": {"globex": 0.0285},
    }
    report = BuildReport(Path("idx"), "v1", 2, 10, 1.0, {"answerability": answerability})
    assert "suggested cut-off 0.2941 (globex 0.0285)" in _summary(report)
