"""A small, deterministic BEIR-format set of product sheets, for the retrieval benchmark and the tests."""

from __future__ import annotations

import random
from pathlib import Path

from knowledge.beir_format import DEFAULT_TENANT, write_dataset


def make_synthetic(out_dir: Path, n_docs: int = 60, seed: int = 0) -> Path:
    """Write a small, deterministic BEIR set: product sheets and questions about one fact of each.

    Half of the questions reuse the sheet's words, half paraphrase them; each has exactly one relevant
    document. It exercises the whole path (format, indexing, scoring) in seconds; it is no benchmark
    of quality.
    """
    rng = random.Random(seed)
    kinds = [
        "kettle",
        "tent",
        "backpack",
        "lamp",
        "blender",
        "jacket",
        "sleeping bag",
        "frying pan",
        "speaker",
        "stove",
    ]
    colours = ["red", "blue", "green", "black", "white", "orange", "grey", "yellow"]
    materials = ["steel", "aluminium", "cotton", "nylon", "ceramic", "oak", "glass", "wool"]
    corpus: dict[str, dict[str, str]] = {}
    queries: dict[str, dict[str, str]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i in range(n_docs):
        kind, colour, material = rng.choice(kinds), rng.choice(colours), rng.choice(materials)
        name = f"{rng.choice(['Alder', 'Birch', 'Cedar', 'Dune', 'Ember', 'Fjord', 'Glen', 'Heath'])} {i:03d}"
        weight, years, price = rng.randint(1, 40) / 2, rng.randint(1, 5), rng.randint(10, 400)
        doc_id = f"p{i:03d}"
        corpus[doc_id] = {
            "title": f"{name} {kind}",
            "text": (
                f"The {name} is a {colour} {kind} made of {material}. It weighs {weight} kg and costs "
                f"{price} euros. It comes with a {years}-year warranty and ships within two days. "
                f"Clean the {kind} with a soft cloth; do not use abrasive cleaners on the {material}."
            ),
            "tenant": DEFAULT_TENANT,
        }
        question = (
            f"How heavy is the {name} {kind}?"
            if i % 2
            else f"What is the {name} {kind} made of and what colour is it?"
        )
        queries[f"q{i:03d}"] = {"text": question, "tenant": DEFAULT_TENANT}
        qrels[f"q{i:03d}"] = {doc_id: 1}
    return write_dataset(Path(out_dir), corpus, queries, qrels)
