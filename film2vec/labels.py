"""Labels (genres, tags) as an assets × labels matrix: the one builder behind evaluation, audit and warm starts.

Pure numpy and scipy, no Spark.

Example::

    matrix, names = label_matrix([["Drama"], ["Comedy", "Drama"], None])
    matrix.toarray()  # [[False, True], [True, True], [False, False]]; names == ("Comedy", "Drama")
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from scipy import sparse


def label_matrix(
    labels: Sequence[Collection[str] | None], names: Sequence[str] | None = None
) -> tuple[sparse.csr_matrix, tuple[str, ...]]:
    """(assets × labels boolean CSR matrix, label names) from each asset's labels (None: none).

    Without `names` the columns are every label found, sorted; with them, those columns in that order, and
    labels outside them are left out."""
    if names is None:
        names = sorted({name for found in labels for name in (found or ())})
    names = tuple(names)
    index = {name: column for column, name in enumerate(names)}
    columns = [sorted({index[name] for name in (found or ()) if name in index}) for found in labels]
    lengths = np.array([len(row) for row in columns], dtype=np.int64)
    flat = np.fromiter((c for row in columns for c in row), dtype=np.int64, count=int(lengths.sum()))
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    matrix = sparse.csr_matrix((np.ones(len(flat), dtype=bool), flat, indptr), shape=(len(labels), len(names)))
    return matrix, names
