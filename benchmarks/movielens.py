"""MovieLens latest-small for the benchmarks: the protocol's split, train co-views and numpy seasons.

The seasons here are a numpy stand-in for the Spark sampler (film2vec.seasons), with the sampling levers
the study compares: origins per asset in proportion to views**origin_beta, uniform or unigram**alpha
negatives, and a minimum number of train views for an asset to take part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from deltalake import write_deltalake

from film2vec.config import SeasonsConfig
from film2vec.evaluate import Split, split_views

MOVIELENS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-latest-small"


@dataclass(frozen=True)
class Catalogue:
    split: Split
    genres: list[set[str]]
    train_views: np.ndarray  # distinct train viewers per asset code
    co_views: sp.csr_matrix  # asset × asset, users who watched both in train, zero diagonal
    inverse_co_views: sp.csr_matrix  # the same with each user counting 1/(n − 1) (--user-weighting inverse)


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
    return Catalogue(split, genres, views, _off_diagonal(watched.T @ watched), _off_diagonal(watched.T @ inverse))


def _off_diagonal(gram: sp.spmatrix) -> sp.csr_matrix:
    gram = gram.tocsr()
    gram.setdiag(0)
    gram.eliminate_zeros()
    return gram


@dataclass(frozen=True)
class Sampling:
    origins_per_asset: int = 300
    origin_beta: float = 0.0  # origins of an asset ∝ views**beta, scaled to the same total
    negatives: int = 5
    negative_alpha: float = 0.0  # 0: uniform over the assets taking part; 0.75: word2vec's unigram**0.75
    min_views: int = 1
    user_weighting: str = "none"  # or "inverse": the co-view walk on 1/(n − 1)-weighted counts

    @classmethod
    def of(cls, config: SeasonsConfig) -> Sampling:
        """The stand-in of the configured sampler. The bipartite walk's P(b | a) is the co-view walk's on
        counts where each user weighs 1/(n − 1) (README, Seasons of samples), so it samples that walk."""
        return cls(
            origins_per_asset=config.origins_per_asset,
            origin_beta=config.origin_exponent if config.origin_distribution == "views" else 0.0,
            negatives=config.negatives,
            negative_alpha=config.unigram_exponent if config.negative_distribution == "unigram" else 0.0,
            user_weighting="inverse" if config.walk == "bipartite" else "none",
        )


def sample_season(catalogue: Catalogue, sampling: Sampling, rng: np.random.Generator) -> pa.Table:
    """One season of (origin, target, negatives) as the seasons table holds them, targets ∝ co_views."""
    views = catalogue.train_views
    taking_part = views >= sampling.min_views
    co_views = catalogue.inverse_co_views if sampling.user_weighting == "inverse" else catalogue.co_views
    if sampling.min_views > 1:
        keep = sp.diags(taking_part.astype(np.int64))
        co_views = (keep @ co_views @ keep).tocsr()
        co_views.eliminate_zeros()
    degree = np.diff(co_views.indptr)
    origins = np.flatnonzero(degree > 0)
    weight = views[origins].astype(float) ** sampling.origin_beta
    draws = np.maximum(1, np.round(weight / weight.mean() * sampling.origins_per_asset)).astype(np.int64)
    origin = np.repeat(origins, draws)
    cumulative = np.cumsum(co_views.data)
    before = np.concatenate(([0], cumulative))[co_views.indptr[origin]]
    total = cumulative[co_views.indptr[origin + 1] - 1] - before
    position = np.searchsorted(cumulative, before + rng.random(len(origin)) * total, side="right")
    target = co_views.indices[position]
    pool = np.flatnonzero(taking_part)
    p = views[pool].astype(float) ** sampling.negative_alpha
    negatives = rng.choice(pool, size=(len(origin), sampling.negatives), p=p / p.sum())
    return season_table(origin, target, negatives)


def season_table(origin: np.ndarray, target: np.ndarray, negatives: np.ndarray, season: int = 0) -> pa.Table:
    flat = pa.array(negatives.astype(np.int32).ravel())
    offsets = pa.array(np.arange(0, len(flat) + 1, negatives.shape[1], dtype=np.int32))
    return pa.table(
        {
            "season": pa.array(np.full(len(origin), season, dtype=np.int32)),
            "origin": pa.array(origin.astype(np.int32)),
            "target": pa.array(target.astype(np.int32)),
            "negatives": pa.ListArray.from_arrays(offsets, flat),
        }
    )


def write_seasons(path: str, catalogue: Catalogue, sampling: Sampling, seasons: int, seed: int) -> None:
    """`seasons` fresh seasons as a Delta table partitioned by season, as the sample stage writes them."""
    for season in range(seasons):
        table = sample_season(catalogue, sampling, np.random.default_rng([seed, season]))
        table = table.set_column(0, "season", pa.array(np.full(table.num_rows, season, dtype=np.int32)))
        write_deltalake(path, table, mode="overwrite" if season == 0 else "append", partition_by=["season"])


def without_rare(vectors: np.ndarray, catalogue: Catalogue, min_views: int) -> np.ndarray:
    """Vectors with the rows of assets under `min_views` train views zeroed (no vector, ranked last)."""
    kept = vectors.copy()
    kept[catalogue.train_views < min_views] = 0.0
    return kept
