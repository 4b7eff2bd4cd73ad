"""benchmarks/cache.py: the counting protocol on a tiny made-up pair set (hashing embedder, no MiniLM)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from app.cache import HashingEmbedder, SemanticSettings

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "cache.py"

PAIRS = [
    {
        "origin": "How long does delivery to Germany take?",
        "similar": "how long does delivery to germany take, please",
    },
    {
        "origin": "How long does delivery to Germany take?",
        "similar": "delivery to Germany: how long does it take?",
    },
    {"origin": "Can I return shoes after 30 days?", "similar": "can I return my shoes after 30 days"},
    {"origin": "What payment methods do you accept?", "similar": "which payment methods are accepted"},
    {
        "origin": "Can I return shoes after 60 days?",
        "similar": "Is it possible to send back shoes after 60 days?",
    },
    {"origin": "Do you ship to Germany?", "similar": "Is shipping to Germany possible?"},
    # its own origin is far away, and "ship to Germany" is close but a different question: must not hit
    {"origin": "What are your opening hours?", "similar": "Do you ship to France?"},
]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cache_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cache_bench"] = module
    spec.loader.exec_module(module)
    return module


def half(bench: ModuleType):
    embedder = HashingEmbedder()
    return bench.build_half(
        PAIRS, embedder.encode([p["origin"] for p in PAIRS]), embedder.encode([p["similar"] for p in PAIRS])
    )


def test_identical_origins_are_one_entry(bench: ModuleType) -> None:
    h = half(bench)
    assert len(h.entries) == 6
    assert h.expected[:2] == [0, 0]


def test_counts_correct_wrong_and_miss(bench: ModuleType) -> None:
    h = half(bench)
    loose = SemanticSettings(threshold=0.3, margin=0.0, lexical_weight=0.0, pool=0.0, check_numbers=False,
                             check_negation=False, check_contrast=False, check_entities=False)  # fmt: skip
    plain = bench.evaluate(h, loose)
    assert plain.total == 7
    assert plain.wrong >= 1  # "ship to France" lands on "ship to Germany" without the second check
    checked = bench.evaluate(h, SemanticSettings(threshold=0.3, margin=0.0, lexical_weight=0.0, pool=0.0))
    assert checked.wrong < plain.wrong
    assert checked.correct >= 3
    assert bench.Counts(10, 1, 9).per_999() == pytest.approx((499.5, 49.95, 449.55))


def test_the_grid_shortcut_agrees_with_the_matcher(bench: ModuleType) -> None:
    h = half(bench)
    base = SemanticSettings(pool=0.05)
    candidates = bench.Candidates(h, base, 0.0)
    for threshold, margin, weight in [(0.3, 0.0, 0.0), (0.5, 0.02, 0.2), (0.7, 0.05, 0.4)]:
        settings = SemanticSettings(threshold=threshold, margin=margin, lexical_weight=weight, pool=0.05)
        assert candidates.count(threshold, margin, weight, 0.05, True) == bench.evaluate(h, settings)


def test_choose_respects_the_wrong_budget(bench: ModuleType) -> None:
    candidates = bench.Candidates(half(bench), SemanticSettings(pool=0.05), 0.0)
    settings, counts = bench.choose(
        candidates, 0.0, checks=True, pool=0.05, margins=(0.0, 0.02), weights=(0.0, 0.2)
    )
    assert counts.wrong == 0 and counts.correct >= 1
    assert settings.threshold in bench.THRESHOLDS


def test_bad_pair_files_are_refused(bench: ModuleType, tmp_path: Path) -> None:
    bad = tmp_path / "pairs.json"
    bad.write_text(json.dumps([{"origin": "x"}]))
    with pytest.raises(ValueError, match="origin, similar"):
        bench.load_pairs(bad)
    assert bench.main(["--data", str(tmp_path / "missing.json")]) == 2
