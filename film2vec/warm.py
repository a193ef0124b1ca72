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
from scipy import sparse

from film2vec.serving import normalised


def _label_matrix(labels: Sequence[Collection[str] | None], index: dict[str, int]) -> sparse.csr_matrix:
    """Assets × labels (1 where the asset carries the label); labels missing from `index` are left out."""
    columns = [[index[name] for name in (names or ()) if name in index] for names in labels]
    lengths = np.array([len(row) for row in columns], dtype=np.int64)
    flat = np.fromiter((c for row in columns for c in row), dtype=np.int64, count=int(lengths.sum()))
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    return sparse.csr_matrix((np.ones(len(flat)), flat, indptr), shape=(len(labels), len(index)))


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
    names = sorted({name for labels in known_labels for name in (labels or ())})
    index = {name: column for column, name in enumerate(names)}
    known = _label_matrix(known_labels, index)
    wanted = _label_matrix(wanted_labels, index)
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
