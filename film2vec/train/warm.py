"""Vectors for assets the trainer has not seen yet, and how far known vectors moved: pure numpy.

A new asset (warm start) or an asset with metadata but no views (cold start) starts from its labels: the
mean unit vector of the known assets that share a label with it, each weighted by the number of labels
it shares, scaled to the known vectors' median norm. An asset whose labels no known asset carries gets
nothing here (the trainer's random start, or no provisional vector).

Example::

    vectors, found = label_mean_vectors(known_vectors, [{"Drama"}, {"Comedy", "Drama"}], [{"Drama"}, set()])
    median_cosine(before, after)  # 1.0 when nothing moved
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from film2vec.labels import label_matrix
from film2vec.serving.nearest import normalised


def label_mean_vectors(
    known_vectors: np.ndarray,
    known_labels: Sequence[Collection[str] | None],
    wanted_labels: Sequence[Collection[str] | None],
) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, found): for each wanted label set, the mean unit vector of the known assets sharing a label
    (an asset sharing m labels counts m times), scaled to the median norm of the known vectors; `found` is
    False (and the row zero) where no known asset shares a label."""
    known_vectors = np.asarray(known_vectors, dtype=np.float64)
    if len(known_labels) != len(known_vectors):
        raise ValueError(f"{len(known_labels)} label sets for {len(known_vectors)} known vectors")
    known, names = label_matrix(known_labels)
    known = known.astype(np.float64)
    wanted = label_matrix(wanted_labels, names)[0].astype(np.float64)
    totals = wanted @ (known.T @ normalised(known_vectors))
    weights = wanted @ np.asarray(known.sum(axis=0)).ravel()
    found = weights > 0
    vectors = np.zeros((len(wanted_labels), known_vectors.shape[1]))
    vectors[found] = totals[found] / weights[found, None]
    scale = np.median(np.linalg.norm(known_vectors, axis=1)) if len(known_vectors) else 0.0
    return normalised(vectors) * scale, found


def median_cosine(before: np.ndarray, after: np.ndarray) -> float:
    """Median over rows of the cosine between a row before and after training (nan for no rows)."""
    if len(before) == 0:
        return float("nan")
    return float(np.median((normalised(np.asarray(before, float)) * normalised(np.asarray(after, float))).sum(axis=1)))
