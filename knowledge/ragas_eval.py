"""ragas 0.4 metrics for the knowledge answers: offline ones always, LLM-judged ones when a judge is configured.

Offline (no LLM, no network; the embeddings are the local MiniLM, passed to ragas explicitly):

- ``non_llm_context_precision``: ragas ``NonLLMContextPrecisionWithReference``: are the retrieved chunks
  the supporting passages (string similarity >= 0.5), weighted by rank;
- ``non_llm_context_recall``: ragas ``NonLLMContextRecall``: share of the supporting passages retrieved;
- ``string_similarity``: ragas ``NonLLMStringSimilarity`` (Levenshtein) of the answer and the reference;
- ``semantic_similarity``: ragas ``SemanticSimilarity`` (cosine of local MiniLM embeddings);
- ``rouge_l``: ragas ``RougeScore`` (F1 of ROUGE-L).

The gold set names supporting *documents*; the supporting passage of a document is its chunk most
similar to the reference answer (by the same embeddings), which is what the context metrics compare with.

LLM-judged, only with ``SWITCHBOARD_JUDGE_BASE_URL`` set (plus ``SWITCHBOARD_JUDGE_MODEL`` (default
``default``), ``SWITCHBOARD_JUDGE_API_KEY`` (default ``none``), ``SWITCHBOARD_JUDGE_TIMEOUT_S`` (default
10); :class:`app.settings.Settings` fields, so ``.env`` works too; any OpenAI-compatible endpoint that
supports JSON mode): ragas ``Faithfulness`` and ``AnswerRelevancy`` (collections API, instructor in
JSON mode). Without a judge they are reported as ``null`` with ``judge: "not configured"``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from app.offline import apply_offline_env
from knowledge.settings import knowledge_settings

OFFLINE_METRICS = (
    "non_llm_context_precision",
    "non_llm_context_recall",
    "string_similarity",
    "semantic_similarity",
    "rouge_l",
)
JUDGED_METRICS = ("faithfulness", "answer_relevancy")


@dataclass
class RagSample:
    """One answered gold question, as ragas sees it."""

    id: str
    question: str
    response: str
    reference: str
    retrieved_contexts: list[str]
    reference_contexts: list[str]
    answered: bool = True


@dataclass
class RagasReport:
    """Per-sample scores and their means."""

    means: dict[str, float | None]
    per_sample: dict[str, dict[str, float | None]] = field(default_factory=dict)
    judge: str = "not configured"


def ragas_embeddings(embed_model: BaseEmbedding) -> Any:
    """Our llama-index embedding as a ragas ``BaseRagasEmbedding`` (so ragas never reaches for OpenAI)."""
    apply_offline_env()
    from ragas.embeddings.base import BaseRagasEmbedding

    class LocalEmbeddings(BaseRagasEmbedding):
        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return list(embed_model.get_text_embedding(text or " "))

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.embed_text(text)

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return [list(v) for v in embed_model.get_text_embedding_batch([t or " " for t in texts])]

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return self.embed_texts(texts)

    return LocalEmbeddings()


def judge_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """A ragas instructor LLM for the judge endpoint of ``SWITCHBOARD_JUDGE_*``, or None without a base URL.

    ``environ``: ``SWITCHBOARD_*`` variables to use instead of the process settings.
    """
    settings = knowledge_settings(environ)
    base_url = settings.judge_base_url.strip()
    if not base_url:
        return None
    from openai import AsyncOpenAI
    from ragas.llms import llm_factory

    client = AsyncOpenAI(
        base_url=base_url,
        api_key=settings.judge_api_key.get_secret_value() or "none",
        timeout=settings.judge_timeout_s,
        max_retries=0,
    )
    return llm_factory(settings.judge_model or "default", client=client, max_tokens=1024)


def supporting_passages(
    reference: str,
    doc_chunks: Mapping[str, Sequence[str]],
    doc_ids: Sequence[str],
    embed_model: BaseEmbedding,
) -> list[str]:
    """For each supporting document, its chunk most similar to the reference answer."""
    passages = []
    target = np.asarray(embed_model.get_text_embedding(reference or " "))
    for doc_id in doc_ids:
        texts = list(doc_chunks.get(doc_id, []))
        if not texts:
            continue
        vectors = np.asarray(embed_model.get_text_embedding_batch(texts))
        passages.append(texts[int(np.argmax(vectors @ target))])
    return passages


def score(
    samples: Sequence[RagSample], embed_model: BaseEmbedding, judge: Any = None, show_progress: bool = False
) -> RagasReport:
    """Run the offline metrics (and the judged ones when ``judge`` is given) over ``samples``."""
    return asyncio.run(_score(list(samples), embed_model, judge, show_progress))


async def _score(
    samples: list[RagSample], embed_model: BaseEmbedding, judge: Any, show_progress: bool
) -> RagasReport:
    apply_offline_env()
    from ragas.dataset_schema import SingleTurnSample
    from ragas.metrics._context_precision import NonLLMContextPrecisionWithReference
    from ragas.metrics._context_recall import NonLLMContextRecall
    from ragas.metrics.collections import NonLLMStringSimilarity, RougeScore, SemanticSimilarity

    embeddings = ragas_embeddings(embed_model)
    precision, recall = NonLLMContextPrecisionWithReference(), NonLLMContextRecall()
    string_similarity, rouge = NonLLMStringSimilarity(), RougeScore(rouge_type="rougeL", mode="fmeasure")
    semantic = SemanticSimilarity(embeddings=embeddings)
    judged: list[Any] = []
    if judge is not None:
        from ragas.metrics.collections import AnswerRelevancy, Faithfulness

        judged = [Faithfulness(llm=judge), AnswerRelevancy(llm=judge, embeddings=embeddings, strictness=1)]

    from tqdm.auto import tqdm

    per_sample: dict[str, dict[str, float | None]] = {}
    for sample in tqdm(samples, desc="ragas", unit="question", disable=not show_progress):
        row: dict[str, float | None] = dict.fromkeys(OFFLINE_METRICS + JUDGED_METRICS)
        if sample.retrieved_contexts and sample.reference_contexts:
            turn = SingleTurnSample(
                retrieved_contexts=sample.retrieved_contexts, reference_contexts=sample.reference_contexts
            )
            row["non_llm_context_precision"] = float(await precision.single_turn_ascore(turn))
            row["non_llm_context_recall"] = float(await recall.single_turn_ascore(turn))
        row["string_similarity"] = float(
            (await string_similarity.ascore(reference=sample.reference, response=sample.response)).value
        )
        row["rouge_l"] = float(
            (await rouge.ascore(reference=sample.reference, response=sample.response)).value
        )
        row["semantic_similarity"] = float(
            (await semantic.ascore(reference=sample.reference, response=sample.response)).value
        )
        if judged and sample.answered and sample.retrieved_contexts:
            faithfulness, relevancy = judged
            row["faithfulness"] = await _judged(
                faithfulness.ascore(
                    user_input=sample.question,
                    response=sample.response,
                    retrieved_contexts=sample.retrieved_contexts,
                )
            )
            row["answer_relevancy"] = await _judged(
                relevancy.ascore(user_input=sample.question, response=sample.response)
            )
        per_sample[sample.id] = row
    names = OFFLINE_METRICS + (JUDGED_METRICS if judged else ())
    means = {name: _mean(row[name] for row in per_sample.values()) for name in names}
    if not judged:
        means.update(dict.fromkeys(JUDGED_METRICS))
    return RagasReport(means=means, per_sample=per_sample, judge="configured" if judged else "not configured")


async def _judged(call: Any) -> float | None:
    """A judged score, or None when the judge fails or answers nonsense (one bad verdict is not fatal)."""
    try:
        value = float((await call).value)
    except Exception:  # noqa: BLE001 - any judge failure (HTTP, JSON, validation) leaves this sample unscored
        return None
    return value if math.isfinite(value) else None


def _mean(values: Any) -> float | None:
    numbers = [v for v in values if v is not None and math.isfinite(v)]
    return round(sum(numbers) / len(numbers), 4) if numbers else None
