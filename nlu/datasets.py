"""Public NLU benchmarks (Banking77, CLINC150, SNIPS) converted to Rasa's NLU YAML, read in place.

Stdlib + PyYAML only (importable from both environments; :func:`datasets_root` reads the main settings). Each loader returns a ``Benchmark``: train and
test examples, and the validation examples when the dataset ships its own (CLINC150's ``val`` +
``oos_val``). Out-of-scope rows are labelled ``out_of_scope`` (:data:`OOS_INTENT`). Entity spans are
character offsets into the text, so they survive any text (SNIPS has no text that Rasa's ``[value](type)``
markup could misread; :func:`write_rasa_yaml` refuses one that it would).

The data lives in ``../shared/datasets`` relative to the repository root (``SWITCHBOARD_DATASETS``, environment
or ``.env``, overrides); it is never copied into the repository: converted files go to a build folder.
"""

from __future__ import annotations

import contextlib
import csv
import json
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OOS_INTENT = "out_of_scope"
PUBLIC = ("banking77", "clinc150", "snips")


def datasets_root() -> Path:
    """Where the public sets are: the settings' ``datasets`` (``SWITCHBOARD_DATASETS`` or ``../shared/datasets``
    from the repo root). Main environment only (the settings need pydantic 2)."""
    from app.settings import get_settings

    return get_settings().datasets


@dataclass(frozen=True)
class Entity:
    start: int
    end: int
    entity: str
    value: str


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    entities: tuple[Entity, ...] = ()


@dataclass
class Benchmark:
    """One dataset's splits. ``validation`` is None when the dataset has no validation set of its own."""

    name: str
    train: list[Example]
    test: list[Example]
    validation: list[Example] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_entities(self) -> bool:
        return any(e.entities for e in self.train)

    @property
    def has_oos(self) -> bool:
        return any(e.intent == OOS_INTENT for e in self.test)


def _clean(text: str) -> str:
    """One line of text: newlines and tabs become spaces (same length, so entity offsets still hold)."""
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def load_banking77(root: Path | None = None) -> Benchmark:
    """Banking77: ``train.csv`` / ``test.csv`` with columns ``text,category`` (77 intents, no OOS)."""
    folder = (root or datasets_root()) / "banking77"

    def read(name: str) -> list[Example]:
        with (folder / name).open(newline="", encoding="utf-8") as f:
            return [Example(_clean(row["text"]).strip(), row["category"]) for row in csv.DictReader(f)]

    return Benchmark("banking77", read("train.csv"), read("test.csv"))


def load_clinc150(root: Path | None = None, oos_in_train: bool = True) -> Benchmark:
    """CLINC150 full: 150 intents; ``oos`` rows become ``out_of_scope``.

    ``oos_in_train`` keeps ``oos_train`` (100 rows) as a 151st training class (the "oos as a class"
    setting of Larson et al.); the validation set is ``val`` + ``oos_val`` (for the threshold), the test
    set ``test`` + ``oos_test``.
    """
    data = json.loads(((root or datasets_root()) / "clinc150" / "data_full.json").read_text(encoding="utf-8"))

    def rows(*keys: str) -> list[Example]:
        return [
            Example(_clean(text).strip(), OOS_INTENT if intent == "oos" else intent)
            for key in keys
            for text, intent in data[key]
        ]

    train = rows("train", "oos_train") if oos_in_train else rows("train")
    return Benchmark("clinc150", train, rows("test", "oos_test"), validation=rows("val", "oos_val"))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _unmangle(text: str) -> str:
    """Text of the Latin-1 file: UTF-8 read as Latin-1 is repaired where it round-trips; control
    characters left over (YAML refuses them) become spaces."""
    if any("\x80" <= ch <= "\xff" for ch in text):
        with contextlib.suppress(UnicodeError):
            text = text.encode("latin-1").decode("utf-8")
    return _CONTROL.sub(" ", text)


def _snips_example(intent: str, parts: Sequence[dict], latin1: bool = False) -> Example:
    """One SNIPS utterance (a list of text chunks, some tagged with an entity) as text + spans."""
    text, entities = "", []
    for part in parts:
        chunk = _clean(_unmangle(part["text"]) if latin1 else part["text"])
        if part.get("entity"):
            # spans are exact: leading/trailing blanks stay outside the entity
            lead = len(chunk) - len(chunk.lstrip())
            value = chunk.strip()
            if value:
                start = len(text) + lead
                entities.append(Entity(start, start + len(value), part["entity"], value))
        text += chunk
    stripped = text.lstrip()
    shift = len(text) - len(stripped)
    entities = [Entity(e.start - shift, e.end - shift, e.entity, e.value) for e in entities]
    return Example(stripped.rstrip(), intent, tuple(entities))


def load_snips(root: Path | None = None) -> Benchmark:
    """SNIPS (2017-06 custom intent engines): 7 intents with span entities.

    Train on ``train_X_full.json``; ``validate_X.json`` is the test set (as in the published numbers).
    ``PlayMusic/train_PlayMusic_full.json`` is Latin-1, every other file UTF-8. Anything tuned on SNIPS
    must use a split of the training files (:func:`split_examples`), never the test set.
    """
    folder = (root or datasets_root()) / "snips"
    train: list[Example] = []
    test: list[Example] = []
    for intent_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        intent = intent_dir.name
        for name, target in ((f"train_{intent}_full.json", train), (f"validate_{intent}.json", test)):
            path = intent_dir / name
            encoding = "latin-1" if name == "train_PlayMusic_full.json" else "utf-8"
            rows = json.loads(path.read_text(encoding=encoding))[intent]
            target.extend(_snips_example(intent, row["data"], encoding == "latin-1") for row in rows)
    return Benchmark("snips", train, test)


LOADERS = {"banking77": load_banking77, "clinc150": load_clinc150, "snips": load_snips}


def load(name: str, root: Path | None = None) -> Benchmark:
    """A public benchmark by name (one of :data:`PUBLIC`)."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(PUBLIC)}")
    return LOADERS[name](root)


def split_examples(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Stratified split by intent: (rest, held-out ``fraction`` of each intent, at least one if >= 2)."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_intent[example.intent].append(example)
    rng = random.Random(seed)
    rest, held = [], []
    for intent in sorted(by_intent):
        group = by_intent[intent][:]
        rng.shuffle(group)
        n = round(len(group) * fraction)
        n = max(1, n) if len(group) >= 2 and fraction > 0 else n
        held.extend(group[:n])
        rest.extend(group[n:])
    return rest, held


def sample_per_intent(
    examples: Sequence[Example], per_intent: int, seed: int, intents: Iterable[str] | None = None
) -> list[Example]:
    """At most ``per_intent`` examples of each intent (of ``intents`` when given): small data for tests."""
    wanted = set(intents) if intents is not None else None
    held: list[Example] = []
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if wanted is None or example.intent in wanted:
            by_intent[example.intent].append(example)
    rng = random.Random(seed)
    for intent in sorted(by_intent):
        group = by_intent[intent][:]
        rng.shuffle(group)
        held.extend(group[:per_intent])
    return held


def _markup(example: Example) -> str:
    """The example's text with Rasa's inline entity markup ``[value](type)``."""
    text, out, pos = example.text, [], 0
    for entity in sorted(example.entities, key=lambda e: e.start):
        out.append(text[pos : entity.start])
        out.append(f"[{text[entity.start : entity.end]}]({entity.entity})")
        pos = entity.end
    out.append(text[pos:])
    return "".join(out)


# Rasa reads `[text](...)`, `[text]{...}` and `[text][...]` as entity markup; other brackets are plain text
_MARKUP_LIKE = re.compile(r"\[[^\]]*\]\s*[({\[]")


def write_rasa_yaml(examples: Sequence[Example], path: Path) -> Path:
    """Write examples as a Rasa 3 NLU YAML file (one block per intent, entities as inline markup)."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        if not example.text:
            continue
        if _MARKUP_LIKE.search(example.text) or (example.entities and any(ch in example.text for ch in "[]")):
            raise ValueError(f"text would be misread as entity markup by Rasa: {example.text!r}")
        by_intent[example.intent].append(_markup(example))
    lines = ['version: "3.1"', "", "nlu:"]
    for intent in sorted(by_intent):
        lines.append(f"  - intent: {intent}")
        lines.append("    examples: |")
        lines.extend(f"      - {text}" for text in by_intent[intent])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
