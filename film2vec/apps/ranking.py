"""How a recommender scores candidates: a user's taste against their unit vectors, plus a popularity prior.

Pure numpy, without Spark: film2vec.apps.recommend runs it per partition, and the evaluation protocol
(film2vec.evaluation.protocol) scores film2vec's recommender by the same prior.
"""

from __future__ import annotations

import numpy as np

from film2vec.serving.nearest import top_k


def popularity_prior(views: np.ndarray, weight: float) -> np.ndarray:
    """weight * log(1 + views) / log(1 + most views): 0 for the least watched, `weight` for the most."""
    logs = np.log1p(np.asarray(views, dtype=np.float64))
    top = logs.max() if logs.size else 0.0
    return weight * logs / top if top > 0 else np.zeros_like(logs)


def rank_candidates(
    tastes: np.ndarray,
    candidate_unit: np.ndarray,
    prior: np.ndarray,
    watched_counts: np.ndarray,
    watched_columns: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(columns, scores) of each user's n best candidates, best first; -inf scores mark empty slots.

    A candidate's score is the dot product of the taste vector with its unit vector plus its prior.
    `watched_columns` holds, user after user (`watched_counts` each), the candidates already watched:
    they are excluded. Ties go to the lower column.
    """
    scores = tastes @ candidate_unit.T + prior
    scores[np.repeat(np.arange(len(tastes)), watched_counts), watched_columns] = -np.inf
    return top_k(scores, np.arange(candidate_unit.shape[0]), n)
