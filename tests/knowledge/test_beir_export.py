"""Our knowledge base and gold questions exported as a BEIR set, tenants included."""

from __future__ import annotations

import json
from pathlib import Path

from knowledge.beir_export import export_gold
from knowledge.beir_format import load_folder

from .test_gold import GOLD, write_gold


def test_the_gold_set_exports_to_beir_with_tenants(tmp_path: Path, sources: Path) -> None:
    out = tmp_path / "export"
    counts = export_gold(write_gold(tmp_path, GOLD), sources, out)
    assert counts == {"documents": 3, "queries": 4, "judgements": 5}  # the unanswerable question is left out
    dataset = load_folder(out)
    assert dataset.corpus["globex-refunds"]["tenant"] == "globex"
    assert dataset.queries["globex-window"] == {
        "text": "How long do globex customers have for a refund with the zebra code?",
        "tenant": "globex",
    }
    assert dataset.qrels["refund-and-delivery"] == {"acme-refunds": 1, "acme-shipping": 1}
    first = json.loads((out / "corpus.jsonl").read_text().splitlines()[0])
    assert set(first) == {"_id", "title", "text", "metadata"}
