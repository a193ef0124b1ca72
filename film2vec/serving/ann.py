"""Approximate neighbours for catalogues past exact all-pairs: a FAISS HNSW graph over the unit vectors, where
the inner product is the cosine. Built once per model version on the driver, searched by the executors for
the neighbours table and by the served model.

It imports numpy and faiss only, so the served model carries it in its code/ folder beside nearest.py.
faiss-cpu is an optional extra: `pip install 'film2vec[ann]'`.

Example::

    index = build_index(normalised(vectors))
    positions, cosines = search(index, index.reconstruct_n(0, 100), np.arange(100), k=10)
"""

from __future__ import annotations

import numpy as np

LINKS = 32  # HNSW's M: the graph's links per vector (memory ~ 2 x LINKS x 4 bytes per vector beside the vector)
BUILD_DEPTH = 80  # efConstruction: candidates weighed per insertion


class AnnUnavailable(ImportError):
    """faiss is not installed where approximate neighbours were asked for."""


def faiss_module():
    """The faiss module; AnnUnavailable saying how to get it when it is missing."""
    try:
        import faiss
    except ImportError:
        raise AnnUnavailable(
            "approximate neighbours need faiss: pip install 'film2vec[ann]' (or faiss-cpu), or raise "
            "--ann-from-assets above the catalogue's size to find them exactly"
        ) from None
    return faiss


def build_index(unit: np.ndarray, search_depth: int = 64):
    """An HNSW index (inner product) over the rows of `unit`, row i at position i, searching `search_depth`
    candidates per query (efSearch, which its serialised form keeps)."""
    faiss = faiss_module()
    unit = np.ascontiguousarray(unit, dtype=np.float32)
    index = faiss.IndexHNSWFlat(unit.shape[1], LINKS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = BUILD_DEPTH
    index.add(unit)
    index.hnsw.efSearch = search_depth
    return index


def index_bytes(index) -> bytes:
    """The index serialised, to broadcast or to store."""
    return faiss_module().serialize_index(index).tobytes()


def load_index(data: bytes):
    """The index from `index_bytes`, searching as deep as it was built to."""
    return faiss_module().deserialize_index(np.frombuffer(data, dtype=np.uint8))


def search(index, queries: np.ndarray, query_positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k nearest other positions and their cosines, best first (ties to the lower position, as
    nearest.top_k orders them); a row with fewer found ends in -1 and -inf. `query_positions` are the
    queries' own positions in the index (-1 for a query that is not in it), never their own neighbour."""
    scores, found = index.search(np.ascontiguousarray(queries, dtype=np.float32), k + 1)
    scores = scores.astype(np.float64)
    unusable = (found < 0) | (found == np.asarray(query_positions)[:, None])
    scores[unusable] = -np.inf
    order = np.lexsort((np.where(unusable, np.iinfo(np.int64).max, found), -scores), axis=-1)[:, :k]
    found, scores = np.take_along_axis(found, order, 1), np.take_along_axis(scores, order, 1)
    found[scores == -np.inf] = -1
    return found, scores
