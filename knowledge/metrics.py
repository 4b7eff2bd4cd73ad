"""Evaluation metrics, in one place: ranking metrics over document ids, and "I don't know" quality.

Ranking (used by :mod:`knowledge.evaluation` on the gold set and :mod:`knowledge.beir_eval` on BEIR sets):
``relevant`` is either a set of relevant document ids (binary relevance) or a mapping ``{doc id: gain}``
as BEIR's qrels give it (graded relevance; a gain of 0 or a missing id is not relevant). A relevant set
is the mapping with every gain 1, so both callers get the same definitions:

- ``hit_at_k``: 1.0 if a relevant document is among the first ``k``;
- ``reciprocal_rank``: 1 / rank of the first relevant document within ``k`` (the mean of it is MRR);
- ``recall_at_k``: share of the relevant documents among the first ``k``;
- ``ndcg_at_k``: DCG of the first ``k`` (gain / log2(rank + 1)) over the DCG of the ideal ranking.

No IR-metrics library (ranx, ir-measures) is in ``requirements.lock``; the unit tests pin these
definitions on hand-computed cases. "I don't know" (unanswerable = positive, refused when the
answerability score is below the cut-off): ``roc_auc`` and ``precision_recall_curve`` come from
scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Relevance = Mapping[str, float] | Iterable[str]


def gains_of(relevant: Relevance) -> Mapping[str, float]:
    """``{doc id: gain}``: a mapping as given, a collection of ids with gain 1 each."""
    return relevant if isinstance(relevant, Mapping) else dict.fromkeys(relevant, 1)


def _relevant_ids(relevant: Relevance) -> set[str]:
    return {doc for doc, gain in gains_of(relevant).items() if gain > 0}


def hit_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    """1.0 if any relevant document is among the first ``k`` ranked, else 0.0."""
    return 1.0 if set(ranked[:k]) & _relevant_ids(relevant) else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: Relevance, k: int | None = None) -> float:
    """1 / rank of the first relevant document within the first ``k`` (all if None); 0.0 if none."""
    wanted = _relevant_ids(relevant)
    for rank, doc_id in enumerate(ranked[:k], start=1):
        if doc_id in wanted:
            return 1.0 / rank
    return 0.0


def recall_at_k(ranked: Sequence[str], relevant: Relevance, k: int) -> float:
    """Share of the relevant documents found among the first ``k`` ranked (0.0 when none are relevant)."""
    wanted = _relevant_ids(relevant)
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Relevance, k: int = 10) -> float:
    """Normalised discounted cumulative gain over the first ``k`` ranked (binary or graded gains)."""
    gains = gains_of(relevant)
    dcg = sum(gains.get(doc, 0) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:k], start=1))
    ideal_gains = sorted((gain for gain in gains.values() if gain > 0), reverse=True)[:k]
    ideal = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(ideal_gains, start=1))
    return dcg / ideal if ideal > 0 else 0.0


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean, or None for no values."""
    values = list(values)
    return sum(values) / len(values) if values else None


def idk_precision_recall(
    abstained: Sequence[bool], unanswerable: Sequence[bool]
) -> tuple[float | None, float | None]:
    """Precision and recall of "I don't know", treating abstention on unanswerable questions as a hit.

    Precision: of the questions the bot abstained on, the share that were unanswerable. Recall: of the
    unanswerable questions, the share the bot abstained on. Undefined (no denominator) -> None.
    """
    if len(abstained) != len(unanswerable):
        raise ValueError("abstained and unanswerable must have the same length")
    both = sum(a and u for a, u in zip(abstained, unanswerable, strict=True))
    precision = both / sum(abstained) if any(abstained) else None
    recall = both / sum(unanswerable) if any(unanswerable) else None
    return precision, recall


def roc_auc(scores: Sequence[float], answerable: Sequence[bool]) -> float | None:
    """Probability that an answerable question scores above an unanswerable one (ties count half).

    scikit-learn's ``roc_auc_score``, rounded to 4 places; None unless both kinds of question occur.
    """
    if len(scores) != len(answerable):
        raise ValueError("scores and answerable must have the same length")
    if len(set(answerable)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return round(float(roc_auc_score([bool(a) for a in answerable], scores)), 4)


def precision_recall_curve(
    scores: Sequence[float], answerable: Sequence[bool], cut_offs: Sequence[float]
) -> list[dict[str, float | None]]:
    """ "I don't know" precision and recall (unanswerable = positive) at each cut-off (refuse if score < cut).

    scikit-learn's ``precision_recall_curve`` on the negated scores gives precision and recall at every
    distinct score ``s`` for "refuse if score <= s"; a cut-off ``c`` refuses exactly what the largest
    score below ``c`` does. Precision is None where nothing is refused, recall where every question is
    answerable.
    """
    if len(scores) != len(answerable):
        raise ValueError("scores and answerable must have the same length")
    import numpy as np

    negated = -np.asarray(scores, dtype=float)
    unanswerable = ~np.asarray(answerable, dtype=bool)
    if not unanswerable.any():  # recall undefined; any refusal is a wrong one
        return [
            {
                "cut_off": round(float(cut), 4),
                "precision": 0.0 if (negated > -cut).any() else None,
                "recall": None,
            }
            for cut in cut_offs
        ]
    from sklearn.metrics import precision_recall_curve as sklearn_curve

    precisions, recalls, thresholds = sklearn_curve(unanswerable, negated)
    points: list[dict[str, float | None]] = []
    for cut in cut_offs:
        # the smallest threshold above -cut refuses exactly the scores below cut
        at = int(np.searchsorted(thresholds, -cut, side="right"))
        refused_any = at < len(thresholds)
        points.append(
            {
                "cut_off": round(float(cut), 4),
                "precision": round(float(precisions[at]), 4) if refused_any else None,
                "recall": round(float(recalls[at]), 4) if refused_any else 0.0,
            }
        )
    return points
