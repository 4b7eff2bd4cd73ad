"""Which passage answers the question: a passage-level ranker over the blocks of the best retrieved chunks.

Retrieval ranks chunks (a whole section, usually); the extractive answer (:mod:`knowledge.extractive`) quotes
one block of one of them. Which block is decided by how well it answers the question, from these features of a
question and a candidate block (:data:`FEATURES`):

- ``passage_sim``: cosine similarity (MiniLM) of the question and the whole block as it would be quoted;
- ``unit_sim``: the best cosine of the question and one of the block's sentences, items or rows;
- ``heading_sim``: cosine of the question and "Title › Section" (with the block's ``###`` heading and lead);
- ``term_overlap`` / ``heading_overlap``: the share of the question's stemmed terms the block / its heading has;
- ``key_match``: 1 when the question names some (not all) of the block's item keys ("PayPal", "Spain");
- ``chunk_score`` and ``chunk_rank``: the chunk's retrieval score and rank; ``block_position``: the block's place
  in its chunk (0: first);
- ``is_list`` / ``is_table``: the block's kind (a paragraph when both are 0).

:class:`PassageRanker` scores a candidate with a linear function of the standardised features, stored as a
:class:`~knowledge.confidence.LogisticModel` (plain JSON, ``passage_ranker.json``). :func:`fit_ranker` learns it
pairwise (a logistic regression on the feature differences of a right and a wrong candidate of the same
question, as RankNet does with a linear scorer): what matters is the order of one question's candidates, not
a score comparable across questions. It is fitted in ``build_index`` (:mod:`knowledge.calibration`) on the dev
questions' candidates, a block being right when its chunk is in the question's labelled section (``section:``
in ``knowledge/eval/dev.yml``, its document when unlabelled) and holds its labelled text (``passage:``, when
given). Without a fitted ranker, :class:`SimilarityRanker` picks the block with the question's most similar
sentence (``unit_sim``), the extractive answer's choice before the ranker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knowledge.confidence import LogisticModel

FEATURES = (
    "passage_sim",
    "unit_sim",
    "heading_sim",
    "term_overlap",
    "heading_overlap",
    "key_match",
    "chunk_score",
    "chunk_rank",
    "block_position",
    "is_list",
    "is_table",
)
MODEL_FILE = "passage_ranker.json"


@dataclass
class PassageRanker(LogisticModel):
    """A linear score of the standardised :data:`FEATURES` (through the logistic function): the higher, the
    better the block answers; only the order of one question's candidates means something."""

    kind: str = "passage_logistic"

    def scores(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        """The score of each candidate (higher: more likely to answer)."""
        return [self.predict(row) for row in rows]

    def save(self, folder: Path) -> Path:
        return self.write(Path(folder) / MODEL_FILE)


class SimilarityRanker:
    """The ranker of an index without a fitted one: the block with the question's best sentence wins."""

    kind = "unit_similarity"

    def scores(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        return [float(row.get("unit_sim", 0.0)) for row in rows]


Ranker = PassageRanker | SimilarityRanker


def load_ranker(index_dir: Path | str) -> Ranker:
    """The index's fitted passage ranker, or :class:`SimilarityRanker` when it has none."""
    path = Path(index_dir) / MODEL_FILE
    return PassageRanker.read(path) if path.is_file() else SimilarityRanker()


@dataclass
class Group:
    """One dev question's candidates: their feature rows and which of them are right."""

    id: str
    rows: list[dict[str, float]]
    right: list[bool]


def fit_ranker(groups: Sequence[Group], *, c: float = 1.0) -> PassageRanker:
    """Fit the ranker pairwise on ``groups`` (those with a right and a wrong candidate): a logistic regression
    without intercept (inverse L2 strength ``c``) telling each right candidate's standardised features minus
    a wrong one's (label 1) from the reverse (label 0)."""
    from sklearn.linear_model import LogisticRegression

    usable = [group for group in groups if any(group.right) and not all(group.right)]
    if not usable:
        raise ValueError("fitting the passage ranker needs dev questions with right and wrong candidates")
    x = np.asarray([[row[name] for name in FEATURES] for g in usable for row in g.rows], dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    pairs = []
    for group in usable:
        standard = (np.asarray([[row[name] for name in FEATURES] for row in group.rows]) - mean) / scale
        right = [i for i, ok in enumerate(group.right) if ok]
        wrong = [i for i, ok in enumerate(group.right) if not ok]
        pairs += [standard[i] - standard[j] for i in right for j in wrong]
    differences = np.asarray(pairs)
    regression = LogisticRegression(C=c, fit_intercept=False, max_iter=1000)
    regression.fit(np.vstack([differences, -differences]), np.r_[np.ones(len(pairs)), np.zeros(len(pairs))])
    return PassageRanker(
        features=list(FEATURES),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=regression.coef_[0].tolist(),
        intercept=0.0,
        info={"questions": len(usable), "rows": int(len(x)), "pairs": len(pairs), "c": c},
    )


def top1(groups: Sequence[Group], scores: Callable[[Group], Sequence[float]]) -> float | None:
    """Share of ``groups`` whose best-scored candidate is a right one (None without groups)."""
    if not groups:
        return None
    hits = sum(group.right[int(np.argmax(scores(group)))] for group in groups)
    return round(hits / len(groups), 4)


def cross_validated_top1(
    groups: Sequence[Group], *, seed: int, folds: int = 5, c: float = 1.0
) -> tuple[float | None, int]:
    """Top-1 accuracy of rankers fitted without the question they rank (k folds of questions, shuffled with
    ``seed``) over the groups with a right candidate, and the folds used (``(None, 0)`` with too few)."""
    answerable = [group for group in groups if any(group.right)]
    folds = min(folds, len(answerable))
    if folds < 2:
        return None, 0
    order = np.random.default_rng(seed).permutation(len(answerable))
    hits = 0
    for fold in range(folds):
        held_out = {int(i) for i in order[fold::folds]}
        model = fit_ranker([g for i, g in enumerate(answerable) if i not in held_out], c=c)
        hits += sum(answerable[i].right[int(np.argmax(model.scores(answerable[i].rows)))] for i in held_out)
    return round(hits / len(answerable), 4), folds
