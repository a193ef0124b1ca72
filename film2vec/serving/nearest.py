"""Nearest neighbours by cosine: pure numpy kernels, no Spark, shared by the served model and the Spark job.

One rule orders neighbours everywhere: the higher cosine first, ties to the lower catalogue position. `top_k`
holds it; `block_neighbours` applies it within one block of candidates, `merge_blocks` across blocks, and
`top_neighbours` over a whole catalogue held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class Vectors:
    """Vectors as numpy: the float32 `matrix` whose row i is the vector of `ids[i]` (one Arrow array; None
    where the rows have no id of their own, as a user's views). Every column of vectors is read this one way:
    vectors are stored as float32, so the float64 callers (k-means, tastes, label means) lose nothing."""

    ids: Any
    matrix: np.ndarray

    @classmethod
    def of(cls, ids, vectors) -> Vectors:
        """From an id column (or None) and a vector column of lists of one length (Arrow, chunked or not)."""
        ids, vectors = (c.combine_chunks() if hasattr(c, "combine_chunks") else c for c in (ids, vectors))
        flat = np.asarray(vectors.flatten(), dtype=np.float32)
        matrix = flat.reshape(len(vectors), -1) if len(vectors) else flat.reshape(0, 0)
        if ids is not None and len(ids) != len(matrix):
            raise ValueError(f"Vectors: {len(ids)} ids for {len(matrix)} vectors")
        return cls(ids, matrix)

    @classmethod
    def of_table(cls, table, id_column: str = "asset_id") -> Vectors:
        """From a table's `id_column` and its `vector` column."""
        return cls.of(table.column(id_column), table.column("vector"))

    def unit(self, dtype: type = np.float32) -> np.ndarray:
        """The rows scaled to unit length, in `dtype`: what cosines are taken on."""
        return normalised(self.matrix.astype(dtype, copy=False))


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def cosines(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """queries x candidates dot products of unit rows, in the inputs' precision.

    Summed in float64 and then rounded, so that equal vectors score bit-for-bit equal wherever they sit in a
    matrix (BLAS may sum the edge of a tile in another order) and exact ties stay ties across blocks."""
    products = queries.astype(np.float64, copy=False) @ candidates.astype(np.float64, copy=False).T
    return products.astype(np.result_type(queries, candidates), copy=False)


def top_k(scores: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(columns, scores) of each row's k highest scores, best first; ties go to the lower position.

    `positions` (per column, or per cell) are the catalogue positions of the candidates. A row with fewer
    than k scores above -inf is filled with -inf entries, which callers drop: -inf marks a non-candidate."""
    k = min(k, scores.shape[1])
    positions = np.broadcast_to(positions, scores.shape)
    every = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    kept = every
    if 0 < k < scores.shape[1]:
        # Only the scores at or above each row's k-th best can be chosen: keep the fewest columns that hold
        # them all (ties at the k-th score included), then order those few exactly.
        kept = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, kept, axis=1).min(axis=1, keepdims=True)
        width = int((scores >= kth).sum(axis=1).max())
        if width > k:  # a tie at some row's k-th score: widen to hold every tied column
            kept = np.argpartition(-scores, width - 1, axis=1)[:, :width] if width < scores.shape[1] else every
    kept_scores = np.take_along_axis(scores, kept, axis=1)
    order = np.lexsort((np.take_along_axis(positions, kept, axis=1), -kept_scores), axis=1)[:, :k]
    return np.take_along_axis(kept, order, axis=1), np.take_along_axis(kept_scores, order, axis=1)


def block_neighbours(
    queries: np.ndarray, query_positions: np.ndarray, candidates: np.ndarray, candidate_positions: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(columns, cosines): each query's k nearest candidates among unit rows, best first, itself left out.

    Positions are catalogue positions (query and candidate rows at one position are one asset). Where a
    query has fewer than k candidates, the rest of its row holds -inf."""
    scores = cosines(queries, candidates)
    scores[np.equal.outer(query_positions, candidate_positions)] = -np.inf
    return top_k(scores, candidate_positions, k)


def merge_blocks(
    owners: np.ndarray, positions: np.ndarray, scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(picked, rank): the k best candidates of each owner among its candidates from every block.

    The inputs are flat and parallel: the owner (a query's position), the candidate's position and score.
    `picked` indexes them, owner by owner in ascending order, best first; `rank` counts 1, 2, … per owner."""
    by_owner = np.argsort(owners, kind="stable")
    _, starts, counts = np.unique(owners[by_owner], return_index=True, return_counts=True)
    rows = np.repeat(np.arange(len(counts)), counts)
    columns = np.arange(len(by_owner)) - np.repeat(starts, counts)
    width = int(counts.max(initial=0))
    grid_scores = np.full((len(counts), width), -np.inf, dtype=scores.dtype)
    grid_positions = np.full((len(counts), width), np.iinfo(np.int64).max, dtype=np.int64)
    grid_index = np.full((len(counts), width), -1, dtype=np.int64)
    grid_scores[rows, columns] = scores[by_owner]
    grid_positions[rows, columns] = positions[by_owner]
    grid_index[rows, columns] = by_owner
    chosen, best = top_k(grid_scores, grid_positions, k)
    found = best > -np.inf
    rank = np.broadcast_to(np.arange(1, chosen.shape[1] + 1), chosen.shape)
    return np.take_along_axis(grid_index, chosen, axis=1)[found], rank[found]


def top_neighbours(unit: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, cosines) of each row's k nearest other rows, best first; ties go to the lower index.

    The whole matrix is scored in its own precision (float32: no float64 copy of it per call, which is what a
    served model answers from), then only the candidates within that precision's rounding of each row's k-th
    score are scored again as `cosines` scores them, summed in float64: the same neighbours and scores as the
    blocks of the neighbours table, exact ties included."""
    rows = np.asarray(rows, dtype=np.int64)
    k = min(k, unit.shape[0] - 1)
    if k <= 0 or rows.size == 0:
        return np.empty((rows.size, max(k, 0)), dtype=np.int64), np.empty((rows.size, max(k, 0)), dtype=unit.dtype)
    queries = unit[rows]
    rough = queries @ unit.T
    rough[np.arange(rows.size), rows] = -np.inf
    kth = np.partition(rough, -k, axis=1)[:, -k]
    # a dot product of unit rows is off by at most dim roundings of the precision it is summed in
    margin = unit.shape[1] * np.finfo(rough.dtype).eps
    slot, column = np.nonzero(rough >= (kth - margin)[:, None])
    exact = np.einsum("ij,ij->i", queries[slot].astype(np.float64), unit[column].astype(np.float64))
    picked, _ = merge_blocks(slot, column, exact.astype(unit.dtype), k)
    return column[picked].reshape(rows.size, k), exact.astype(unit.dtype)[picked].reshape(rows.size, k)
