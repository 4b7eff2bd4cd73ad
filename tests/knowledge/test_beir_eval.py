"""Scoring every retriever on BEIR sets: a generated one, and our exported gold set with its tenants."""

from __future__ import annotations

from pathlib import Path

from knowledge.beir_eval import evaluate_dataset
from knowledge.beir_export import export_gold
from knowledge.beir_format import load_folder
from knowledge.beir_synthetic import make_synthetic

from .conftest import HashingEmbedding
from .test_gold import GOLD, write_gold


def test_every_retriever_is_scored_on_a_generated_set(tmp_path: Path) -> None:
    dataset = load_folder(make_synthetic(tmp_path / "tiny", n_docs=24))
    assert len(dataset.corpus) == 24 and len(dataset.judged_queries) == 24
    run = evaluate_dataset(dataset, HashingEmbedding(), work_dir=tmp_path)
    assert set(run.scores) == {"dense", "bm25", "hybrid"}
    for values in run.scores.values():
        assert set(values) == {"ndcg_at_10", "recall_at_100", "mrr_at_10", "latency_ms_p50"}
        assert 0.0 <= values["ndcg_at_10"] <= 1.0 and values["recall_at_100"] == 1.0
    assert run.scores["bm25"]["ndcg_at_10"] > 0.8  # the product names are in the questions
    assert run.build_seconds > 0 and run.chunks == 24


def test_tenants_in_a_beir_set_are_respected(tmp_path: Path, sources: Path) -> None:
    out = tmp_path / "export"
    export_gold(write_gold(tmp_path, GOLD), sources, out)
    run = evaluate_dataset(
        load_folder(out), HashingEmbedding(), retrievers=["bm25", "dense"], work_dir=tmp_path
    )
    assert run.scores["bm25"]["recall_at_100"] == 1.0 and run.scores["dense"]["recall_at_100"] == 1.0
