"""MovieLens latest-small for the benchmarks: the protocol's split, train co-views and seasons.

The seasons are drawn on the driver by the sampler's own kernels (film2vec.seasons.walks) and plan, so a study
measures the product's sampler; on top of the sampler's settings a study may leave out assets with few
train views (they are then neither origin, target nor negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from deltalake import write_deltalake

from film2vec.config import SeasonsConfig
from film2vec.evaluation.protocol import Split, split_views
from film2vec.seasons.sampler import integer_weights, sample_batch, sampling_plan
from film2vec.seasons.walks import (
    bipartite_samples,
    bipartite_users,
    coview_samples,
    mix64,
    origin_streams,
    positions_in_lists,
    stream_key,
)

MOVIELENS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-latest-small"


@dataclass(frozen=True)
class Catalogue:
    split: Split
    genres: list[set[str]]
    train_views: np.ndarray  # distinct train viewers per asset code
    watched: sp.csr_matrix  # user × asset, 1 where the user watched the asset in train
    co_views: sp.csr_matrix  # asset × asset, users who watched both in train, zero diagonal
    inverse_co_views: sp.csr_matrix  # the same with each user counting 1/(n − 1) (--user-weighting inverse)
    train_time: np.ndarray  # when each train view (split.train_user, split.train_asset) was first seen


def load(folder: Path = MOVIELENS) -> Catalogue:
    """Ratings as views (asset code = position in sorted movie ids), the split, genres and co-views."""
    if not (folder / "ratings.csv").is_file():
        raise SystemExit(f"MovieLens latest-small not found at {folder}")
    ratings = pd.read_csv(folder / "ratings.csv")
    movies = pd.read_csv(folder / "movies.csv")
    ids = np.unique(np.concatenate((ratings.movieId.to_numpy(), movies.movieId.to_numpy())))
    asset = np.searchsorted(ids, ratings.movieId.to_numpy())
    split = split_views(ratings.userId.to_numpy(), asset, ratings.timestamp.to_numpy())
    genres: list[set[str]] = [set() for _ in ids]
    for movie, names in zip(np.searchsorted(ids, movies.movieId.to_numpy()), movies.genres):
        genres[movie] = set(names.split("|")) - {"(no genres listed)"}
    users = split.train_user.max() + 1
    watched = sp.csr_matrix(
        (np.ones(len(split.train_user), dtype=np.int64), (split.train_user, split.train_asset)), shape=(users, len(ids))
    )
    history = np.asarray(watched.sum(axis=1)).ravel()
    inverse = sp.diags(1.0 / np.maximum(history - 1, 1)) @ watched
    views = np.bincount(split.train_asset, minlength=len(ids))
    first_seen = pd.DataFrame({"user": ratings.userId, "asset": asset, "time": ratings.timestamp})
    first_seen = first_seen.groupby(["user", "asset"])["time"].min()
    train_time = first_seen.reindex(pd.MultiIndex.from_arrays([split.train_user, split.train_asset])).to_numpy()
    return Catalogue(
        split,
        genres,
        views,
        watched,
        _off_diagonal(watched.T @ watched),
        _off_diagonal(watched.T @ inverse),
        train_time,
    )


def _off_diagonal(gram: sp.spmatrix) -> sp.csr_matrix:
    gram = gram.tocsr()
    gram.setdiag(0)
    gram.eliminate_zeros()
    return gram


@dataclass(frozen=True)
class Sampling:
    """The sampler's settings, how co-views count users (pairs.user_weighting, for the co-view walk), and the
    fewest train views for an asset to take part (as origin, target or negative) in the study's seasons."""

    seasons: SeasonsConfig = field(default_factory=SeasonsConfig)
    user_weighting: str = "none"
    min_views: int = 1


def sample_season(catalogue: Catalogue, sampling: Sampling, season: int, seed: int) -> pa.Table:
    """One season as the sample stage writes it (season, draw, origin, target), drawn by the product's kernels
    (film2vec.seasons.walks) with the same plan (film2vec.seasons.sampler.sampling_plan) and the same counter-based
    streams, keyed by (seed, season). Assets under `min_views` train views take no part in the walk (neither origin nor
    target); negatives, drawn by the trainer, come from the whole catalogue, as in the product."""
    views = catalogue.train_views
    kept = sp.diags((views >= sampling.min_views).astype(np.int64), dtype=np.int64)  # 0/1: keeps asset indices
    key = stream_key(seed, season)
    slots = sampling.seasons.negatives
    if sampling.seasons.walk == "bipartite":
        watched = (catalogue.watched @ kept).tocsr()
        watched.eliminate_zeros()
        onward = np.flatnonzero(np.diff(watched.indptr) >= 2)  # a user with one asset has no other to step to
        watched = watched[onward]
        watched.sort_indices()
        users_of = watched.tocsc()
        users_of.sort_indices()
        origins = np.flatnonzero(np.diff(users_of.indptr) > 0)
        plan = sampling_plan(sampling.seasons, views, views[origins])
        counts = plan.counts(origin_streams(key, origins), views[origins])
        origin, sample, position = bipartite_users(
            key, origins, counts, users_of.indptr[np.append(origins, origins[-1] + 1)], slots
        )
        user = users_of.indices[position]
        list_start, list_size = watched.indptr[user], np.diff(watched.indptr)[user]
        window = sampling.seasons.context_window
        history = viewing_order(catalogue, views >= sampling.min_views, onward) if window else watched.indices
        origin_at = positions_in_lists(watched.indptr, history, user, origin) if window else None
        drawn = bipartite_samples(key, origin, sample, list_start, list_size, history, slots, window, origin_at)
    else:
        co_views = catalogue.inverse_co_views if sampling.user_weighting == "inverse" else catalogue.co_views
        co_views = (kept @ co_views @ kept).tocsr()
        co_views.eliminate_zeros()
        co_views.sort_indices()
        origins = np.flatnonzero(np.diff(co_views.indptr) > 0)
        plan = sampling_plan(sampling.seasons, views, views[origins])
        counts = plan.counts(origin_streams(key, origins), views[origins])
        offsets = co_views.indptr[np.append(origins, origins[-1] + 1)]
        lists = slice(offsets[0], offsets[-1])
        drawn = coview_samples(
            key,
            origins,
            counts,
            offsets - offsets[0],
            co_views.indices[lists],
            integer_weights(co_views.data[lists]),
            slots,
        )
    return pa.Table.from_batches([sample_batch(season, *drawn)]).sort_by("draw")


def viewing_order(catalogue: Catalogue, kept: np.ndarray, users: np.ndarray) -> np.ndarray:
    """The `kept` assets of `users` (ascending), each user's in viewing order, ties (equal times) in the order of
    a hash of (user, asset): the rows of `watched` re-ordered. The hash is SplitMix64's, not Spark's xxhash64
    the sampler uses, so tied views fall in another (equally arbitrary) order than in `film2vec sample`."""
    split = catalogue.split
    chosen = kept[split.train_asset] & np.isin(split.train_user, users)
    user, asset, time = split.train_user[chosen], split.train_asset[chosen], catalogue.train_time[chosen]
    tie = mix64(user.astype(np.uint64) << np.uint64(32) | asset.astype(np.uint64))
    return asset[np.lexsort((tie, time, user))]


def write_seasons(path: str, catalogue: Catalogue, sampling: Sampling, seasons: int, seed: int) -> None:
    """`seasons` fresh seasons as a Delta table partitioned by season, as the sample stage writes them."""
    for season in range(seasons):
        table = sample_season(catalogue, sampling, season, seed)
        write_deltalake(path, table, mode="overwrite" if season == 0 else "append", partition_by=["season"])


def without_rare(vectors: np.ndarray, catalogue: Catalogue, min_views: int) -> np.ndarray:
    """Vectors with the rows of assets under `min_views` train views zeroed (no vector, ranked last)."""
    kept = vectors.copy()
    kept[catalogue.train_views < min_views] = 0.0
    return kept
