"""Similar assets for one query: find the asset by id or title, then its nearest neighbours by cosine.

Exact search (one matrix-vector product) is the default; above a size threshold an approximate FAISS
HNSW index answers instead (`pip install faiss-cpu`, the `ann` extra), as exact search then costs a
full pass over the catalogue per query.
"""

from __future__ import annotations

import numpy as np

from film2vec.events import InputError
from film2vec.serving import top_neighbours

HNSW_LINKS = 32  # graph degree of the HNSW index: recall against memory
HNSW_SEARCH_DEPTH = 128  # candidates explored per query: recall against time


def find_asset(query: str, asset_ids: list, titles: list, views: np.ndarray) -> tuple[int, list[int]]:
    """(row of the asset meant, rows of the other matches): an id, else an exact title (any case),
    else titles containing the query; among several matches the most viewed wins."""
    wanted = query.strip().casefold()
    for matches in (
        [row for row, asset in enumerate(asset_ids) if str(asset).casefold() == wanted],
        [row for row, title in enumerate(titles) if title and title.casefold() == wanted],
        [row for row, title in enumerate(titles) if title and wanted in title.casefold()],
    ):
        if matches:
            ranked = sorted(matches, key=lambda row: (-views[row], row))
            return ranked[0], ranked[1:]
    raise InputError(f"no asset has the id or a title matching {query!r}; try part of a title")


def approximate_neighbours(unit: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) like serving.top_neighbours, from a FAISS HNSW inner-product index."""
    try:
        import faiss
    except ImportError:
        raise InputError(
            "approximate search needs FAISS: `pip install faiss-cpu` (or film2vec[ann]), or use --similar-method exact"
        ) from None
    index = faiss.IndexHNSWFlat(unit.shape[1], HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = max(HNSW_SEARCH_DEPTH, k + 1)
    index.add(np.ascontiguousarray(unit, dtype=np.float32))
    cosines, found = index.search(np.ascontiguousarray(unit[rows], dtype=np.float32), k + 1)
    not_self = (found != rows[:, None]) & (found >= 0)
    order = np.argsort(~not_self, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(found, order, axis=1), np.take_along_axis(cosines, order, axis=1).astype(np.float64)


def neighbours(
    unit: np.ndarray, rows: np.ndarray, k: int, method: str, approximate_above: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """(indices, cosines, method used): exact, approximate, or auto (approximate above the size threshold)."""
    if method == "approximate" or method == "auto" and len(unit) > approximate_above:
        return (*approximate_neighbours(unit, rows, k), "approximate")
    return (*top_neighbours(unit, rows, k), "exact")
