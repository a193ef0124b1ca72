"""Sampling kernels: pure numpy on arrays, no Spark.

Randomness is counter-based: every draw is a hash of (seed, season, origin, draw number), so a season is
the same whatever the partitioning, batch size, retries or executor count, and a different season is a
fresh, independent draw. splitmix64 passes BigCrush and vectorises to a handful of uint64 operations.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on a uint64 array (wrapping arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, season: int) -> np.uint64:
    """The key of one season's random stream."""
    mixed = splitmix64(np.array([seed % 2**64], dtype=np.uint64))
    return splitmix64(mixed ^ np.array([season % 2**64], dtype=np.uint64))[0]


def random_bits(key: np.uint64, origin: np.ndarray, draw: np.ndarray) -> np.ndarray:
    """64 random bits for each (origin, draw) pair under a season's key."""
    first = splitmix64(key ^ origin.astype(np.uint64))
    return splitmix64(first ^ draw.astype(np.uint64))


def uniform_below(bits: np.ndarray, bound: np.ndarray | int) -> np.ndarray:
    """Integers uniform on [0, bound) from random bits (53 bits of precision; bound < 2**53)."""
    unit = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.minimum((unit * bound).astype(np.int64), np.asarray(bound, dtype=np.int64) - 1)


def draw_coview_targets(
    key: np.uint64,
    origins: np.ndarray,
    offsets: np.ndarray,
    neighbours: np.ndarray,
    co_views: np.ndarray,
    draws_per_origin: int,
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """One-step walk: `draws_per_origin` targets per origin, each with probability ∝ co_views.

    The origins' neighbour lists are in CSR form: origin i owns neighbours[offsets[i]:offsets[i + 1]]
    with weights co_views[...]. One cumulative sum over all lists and one binary search per draw.
    Draw j of an origin uses the random bits numbered j * stride, leaving the numbers in between to the
    sample's negatives. Returns (origin, target) arrays of length len(origins) * draws_per_origin.
    """
    cumulative = np.cumsum(co_views, dtype=np.int64)
    before = np.concatenate(([0], cumulative))[offsets[:-1]]
    totals = cumulative[offsets[1:] - 1] - before
    row = np.repeat(np.arange(len(origins)), draws_per_origin)
    draw = np.tile(np.arange(draws_per_origin, dtype=np.uint64), len(origins)) * np.uint64(stride)
    bits = random_bits(key, origins[row], draw)
    position = np.searchsorted(cumulative, before[row] + uniform_below(bits, totals[row]), side="right")
    return origins[row], neighbours[position]


def draw_uniform_negatives(
    key: np.uint64, origins: np.ndarray, targets: np.ndarray, sample: np.ndarray, n_assets: int, count: int
) -> np.ndarray:
    """`count` negatives per sample, uniform over the assets other than its origin and target.

    A draw on [0, n_assets - 2) is shifted past the two excluded indices, which is exactly uniform on
    the rest. Negatives of one sample are drawn independently (they may repeat, as in word2vec).
    Sample s of an origin uses the bits numbered s * (count + 1) + 1 ... + count, the numbers its target
    draw (s * (count + 1)) leaves free.
    """
    slot = np.arange(1, count + 1, dtype=np.uint64)
    draw = (sample.astype(np.uint64) * np.uint64(count + 1))[:, None] + slot
    bits = random_bits(key, np.repeat(origins, count).reshape(-1, count), draw)
    negatives = uniform_below(bits, n_assets - 2)
    low = np.minimum(origins, targets)[:, None]
    high = np.maximum(origins, targets)[:, None]
    negatives += negatives >= low
    negatives += negatives >= high
    return negatives


def sample_coview_season(
    key: np.uint64,
    origins: np.ndarray,
    offsets: np.ndarray,
    neighbours: np.ndarray,
    co_views: np.ndarray,
    draws_per_origin: int,
    n_assets: int,
    negatives: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin, target, negatives[n, k]) for a block of origins: the co-view walk plus uniform negatives."""
    origin, target = draw_coview_targets(
        key, origins, offsets, neighbours, co_views, draws_per_origin, stride=negatives + 1
    )
    sample = np.tile(np.arange(draws_per_origin, dtype=np.uint64), len(origins))
    return origin, target, draw_uniform_negatives(key, origin, target, sample, n_assets, negatives)
