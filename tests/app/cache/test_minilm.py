"""The semantic cache with the real local MiniLM and the settings chosen on the paraphrase pairs (params.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cache import AnswerCache, CacheSettings, MiniLMEmbedder, SqlCacheBackend
from app.data.db import get_engine, upgrade
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_minilm_cache_hits_paraphrases_and_refuses_different_questions(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    settings = CacheSettings.from_params(
        Settings(params_file=ROOT / "params.yaml").params_section("cache"), overrides={}
    )
    assert settings.embedder == "minilm"
    cache = AnswerCache(SqlCacheBackend(get_engine(sqlite_url)), MiniLMEmbedder(), settings)
    cached = {
        "How long does delivery to Germany take?": "2-3 working days.",
        "Can I return shoes after 30 days?": "Yes, within 30 days of delivery.",
        "How do I enable two-factor authentication?": "Settings > Security > Enable 2FA.",
        "What are the fees for express shipping?": "Express shipping costs 9.90 EUR.",
        "Is the store open on Sunday?": "Yes, 10:00-16:00.",
    }
    for question, answer in cached.items():
        assert cache.store("acme", "alice", "kb1", question, answer, personal=False)

    hit = cache.lookup("acme", "kb1", "How many days does shipping to Germany take?")
    assert hit is not None and hit.kind == "semantic" and hit.answer == "2-3 working days."
    hit = cache.lookup("acme", "kb1", "How can I turn on two-factor authentication?")
    assert hit is not None and hit.answer == "Settings > Security > Enable 2FA."
    for different in (
        "Can I return shoes after 60 days?",
        "How do I disable two-factor authentication?",
        "What are the fees for standard shipping?",
        "Is the store not open on Sunday?",
        "How long does delivery to France take?",
    ):
        assert cache.lookup("acme", "kb1", different) is None, different
