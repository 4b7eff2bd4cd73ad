"""ragas metrics: the offline ones with a local embedding, the judged ones against the test LLM server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from knowledge.ragas_eval import OFFLINE_METRICS, RagSample, judge_from_env, score, supporting_passages
from tests.llm_server import LLMTestServer, ServerConfig

from .conftest import HashingEmbedding

PASSAGE = "Refunds go back to the original payment method within 5 business days."
SAMPLES = [
    RagSample("same", "When do refunds arrive?", PASSAGE, PASSAGE, [PASSAGE], [PASSAGE]),
    RagSample(
        "off",
        "When do refunds arrive?",
        "Zebras graze on savannah grass.",
        PASSAGE,
        ["Zebras graze on savannah grass at dawn."],
        [PASSAGE],
    ),
]


def test_offline_metrics_score_agreement_high_and_nonsense_low() -> None:
    report = score(SAMPLES, HashingEmbedding())
    same, off = report.per_sample["same"], report.per_sample["off"]
    for name in OFFLINE_METRICS:
        assert same[name] == pytest.approx(1.0), name
        assert off[name] < 0.5, name
    assert off["non_llm_context_precision"] == 0.0 and off["non_llm_context_recall"] == 0.0
    assert report.judge == "not configured"
    assert report.means["faithfulness"] is None and report.means["answer_relevancy"] is None
    assert report.means["semantic_similarity"] == pytest.approx(
        (1.0 + off["semantic_similarity"]) / 2, abs=1e-4
    )


def test_the_supporting_passage_is_the_chunk_closest_to_the_reference() -> None:
    chunks = {"doc": ["Opening hours are nine to five.", PASSAGE, "Gift cards never expire."]}
    assert supporting_passages(
        "refunds original payment method", chunks, ["doc", "missing"], HashingEmbedding()
    ) == [PASSAGE]


@pytest.fixture(scope="module")
def judge_server() -> Iterator[LLMTestServer]:
    with LLMTestServer(ServerConfig(models=["judge"])) as server:
        yield server


def test_the_judged_metrics_need_a_configured_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBOARD_JUDGE_BASE_URL", raising=False)
    assert judge_from_env() is None


def test_faithfulness_and_relevancy_from_scripted_verdicts(judge_server: LLMTestServer) -> None:
    judge_server.reset()
    judge_server.add_rule(
        pattern="analyze the complexity of each sentence",
        json_object={"statements": ["Refunds arrive within 5 business days.", "Refunds go to the card."]},
    )
    judge_server.add_rule(
        pattern="judge the faithfulness of a series of statements",
        json_object={
            "statements": [
                {"statement": "Refunds arrive within 5 business days.", "reason": "stated", "verdict": 1},
                {"statement": "Refunds go to the card.", "reason": "not stated", "verdict": 0},
            ]
        },
    )
    judge_server.add_rule(
        pattern="Generate a question for the given answer",
        json_object={"question": "When do refunds arrive?", "noncommittal": 0},
    )
    judge = judge_from_env(
        {"SWITCHBOARD_JUDGE_BASE_URL": judge_server.base_url, "SWITCHBOARD_JUDGE_MODEL": "judge"}
    )
    report = score(SAMPLES[:1], HashingEmbedding(), judge=judge)
    assert report.judge == "configured"
    assert report.means["faithfulness"] == pytest.approx(0.5)  # one of two statements supported
    assert report.means["answer_relevancy"] == pytest.approx(1.0)  # the generated question is the question
    assert judge_server.request_counts["judge"] == 3


def test_a_judge_that_answers_nonsense_leaves_the_sample_unscored(judge_server: LLMTestServer) -> None:
    judge_server.reset()
    judge_server.update(default_reply="this is not JSON")
    judge = judge_from_env(
        {"SWITCHBOARD_JUDGE_BASE_URL": judge_server.base_url, "SWITCHBOARD_JUDGE_MODEL": "judge"}
    )
    report = score(SAMPLES[:1], HashingEmbedding(), judge=judge)
    assert report.means["faithfulness"] is None and report.means["answer_relevancy"] is None
    assert report.means["string_similarity"] == pytest.approx(1.0)  # the offline metrics still count
