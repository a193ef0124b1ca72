"""The fixed evaluation protocol: a per-user time split, next-watch ranking and genre neighbours.

Pure numpy on code arrays, so every model and every baseline is scored by the same arithmetic. Every view
is implicit feedback. The catalogue is every asset seen in the events (train or test). An asset without a
vector (a row that is zero or not finite) ranks last and is never a neighbour; ties go to the lower id.

Example::

    split = split_views(user, asset, viewed_at)
    evaluate(vectors, split, asset_genres)  # {"recall_at_20": ..., "ndcg_at_20": ..., "genre_p_at_10": ...}
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from film2vec.apps.ranking import popularity_prior
from film2vec.config import AppsConfig
from film2vec.errors import InputError
from film2vec.labels import label_matrix
from film2vec.recency import recency_weights
from film2vec.serving.nearest import Vectors, top_k

# Below every real score (a dot product with a sum of unit vectors) and above an excluded asset's -inf.
_NO_VECTOR_SCORE = -np.finfo(np.float64).max


@dataclass(frozen=True)
class Split:
    """Train and test views as int64 code arrays, one entry per distinct (user, asset), with each train view's
    time when the split had times (for recency-weighted tastes)."""

    train_user: np.ndarray
    train_asset: np.ndarray
    test_user: np.ndarray
    test_asset: np.ndarray
    train_time: np.ndarray | None = None


def split_views(user: np.ndarray, asset: np.ndarray, viewed_at: np.ndarray | None = None, test_views: int = 5) -> Split:
    """Each user's last `test_views` distinct views are test, the rest train.

    A repeated (user, asset) keeps its earliest view. Views are ordered by (time, asset id), so equal
    times (or no times: pass None) fall back to the asset id. A user needs more than `test_views` distinct
    views (6 by default) to be evaluated: with fewer there is nothing to build a taste from, so all of that
    user's views go to train.
    """
    if test_views < 1:
        raise ValueError(f"test_views must be at least 1, got {test_views}")
    user = np.asarray(user, dtype=np.int64)
    asset = np.asarray(asset, dtype=np.int64)
    timed = viewed_at is not None
    viewed_at = np.asarray(viewed_at, dtype=np.int64) if timed else np.zeros_like(asset)
    if not user.ndim == asset.ndim == viewed_at.ndim == 1 or not len(user) == len(asset) == len(viewed_at):
        raise ValueError(
            f"user, asset and viewed_at must be 1-d arrays of one length, got shapes "
            f"{user.shape}, {asset.shape} and {viewed_at.shape}"
        )
    if asset.size and asset.min() < 0:
        raise ValueError(f"asset codes must be >= 0, found {asset.min()}")

    by_pair = np.lexsort((viewed_at, asset, user))
    earliest = np.ones(len(by_pair), dtype=bool)
    earliest[1:] = (np.diff(user[by_pair]) != 0) | (np.diff(asset[by_pair]) != 0)
    kept = by_pair[earliest]
    user, asset, viewed_at = user[kept], asset[kept], viewed_at[kept]

    by_time = np.lexsort((asset, viewed_at, user))
    user, asset, viewed_at = user[by_time], asset[by_time], viewed_at[by_time]
    _, first, views = np.unique(user, return_index=True, return_counts=True)
    views_of_user = np.repeat(views, views)
    position = np.arange(len(user)) - np.repeat(first, views)
    test = (views_of_user > test_views) & (position >= views_of_user - test_views)
    return Split(user[~test], asset[~test], user[test], asset[test], viewed_at[~test] if timed else None)


def next_watch(vectors: np.ndarray, split: Split, k: int = 20, **options) -> dict[str, float]:
    """Recall@k and NDCG@k of ranking the catalogue for each user with test views, averaged over users: the
    means of next_watch_by_user (whose keyword options it takes)."""
    return term_means(next_watch_by_user(vectors, split, k, **options))


def next_watch_by_user(
    vectors: np.ndarray,
    split: Split,
    k: int = 20,
    *,
    view_weights: np.ndarray | None = None,
    prior: np.ndarray | None = None,
    catalogue: np.ndarray | None = None,
    block_cells: int = 1 << 23,
) -> dict[str, np.ndarray]:
    """Recall@k and NDCG@k of ranking the catalogue for each user with test views, one value per such user
    (in user code order): the terms a paired comparison of two sets of vectors needs.

    The user vector is the mean of the unit vectors of the user's train assets (weighted by `view_weights`,
    one per train view of the split, when given: a recommender's recency weighting); candidates are scored
    by cosine, excluding the user's train assets. Ranking by the dot product with the (weighted) sum of
    those unit vectors gives the same order (cosine times a positive per-user constant) with fewer
    roundings. A user whose train assets all lack vectors gets all-zero scores, so candidates come by id.
    With `prior` (a score per asset code added to every candidate's: a recommender's popularity prior), the
    query is the (weighted) mean itself, as film2vec's recommender scores it (film2vec.apps.ranking).
    Recall divides the hits by the user's test views; NDCG uses binary relevance, a log2 discount and an
    ideal DCG over min(test views, k) hits. The candidates are the split's assets, or `catalogue` (asset
    codes) when given: a slice of a few users ranks against every asset. Users are scored in blocks of at most
    `block_cells` scores (memory ~24 B each).
    """
    unit, has_vector = _unit_rows(vectors, split)
    by_user = np.argsort(split.train_user, kind="stable")  # the order _rank_for_users hands the train rows in
    user_of_row = split.train_user[by_user]
    if view_weights is not None:
        if np.shape(view_weights) != split.train_user.shape:
            raise ValueError(
                f"view_weights has shape {np.shape(view_weights)}, the split {split.train_user.shape} train views"
            )
        view_weights = np.asarray(view_weights, dtype=np.float64)[by_user]

    def taste(users: np.ndarray, view_start: np.ndarray, views: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        found = np.zeros((len(users), candidates.shape[1]))
        watched = views > 0
        weights = np.ones(views.sum())
        if view_weights is not None:
            first = np.searchsorted(user_of_row, users)
            weights = view_weights[np.repeat(first - view_start, views) + np.arange(views.sum())]
            candidates = candidates * weights[:, None]
        if watched.any():
            # reduceat over the users who watched something: their starts bound exactly their own views.
            found[watched] = np.add.reduceat(candidates, view_start[watched], axis=0)
            if prior is not None:  # the mean, on the scale of the prior
                found[watched] /= np.add.reduceat(weights, view_start[watched])[:, None]
        return found

    return _rank_for_users(unit, has_vector, taste, split, k, block_cells, catalogue, prior)


def next_watch_of_user_vectors(
    user_vectors: np.ndarray, vectors: np.ndarray, split: Split, k: int = 20, *, block_cells: int = 1 << 23
) -> dict[str, float]:
    """Recall@k and NDCG@k of a factor model's own recommender: candidates ranked by the dot product of the
    user's vector (row = user code) with theirs, excluding the user's train assets.

    The same ranking, exclusions, ties and metrics as next_watch, only the query differs: a learnt user
    vector instead of the mean of the train assets' unit vectors, and raw (not unit) asset vectors, as
    ALS's recommendForAllUsers scores. A user without a vector (a zero row) gets candidates by id.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    user_vectors = np.asarray(user_vectors, dtype=np.float64)
    _, has_vector = _unit_rows(vectors, split)
    if user_vectors.ndim != 2 or user_vectors.shape[1] != vectors.shape[1]:
        raise ValueError(f"user_vectors must be (users, {vectors.shape[1]}), got shape {user_vectors.shape}")
    largest = int(split.test_user.max()) if split.test_user.size else -1
    if largest >= len(user_vectors):
        raise ValueError(f"user code {largest} is in the split but user_vectors has only {len(user_vectors)} rows")
    candidates = np.where(has_vector[:, None], vectors, 0.0)

    def own_vector(users: np.ndarray, view_start: np.ndarray, views: np.ndarray, _watched: np.ndarray) -> np.ndarray:
        return user_vectors[users]

    return term_means(_rank_for_users(candidates, has_vector, own_vector, split, k, block_cells))


def term_means(terms: dict[str, np.ndarray]) -> dict[str, float]:
    """Each figure as the mean of its terms (per user, per asset); nan for a figure with none."""
    return {name: term_mean(values) for name, values in terms.items()}


def term_mean(values: np.ndarray) -> float:
    """A figure as the mean of its terms; nan when it has none."""
    return float(np.mean(values)) if values.size else float("nan")


def _rank_for_users(
    candidates: np.ndarray,
    has_vector: np.ndarray,
    query: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    split: Split,
    k: int,
    block_cells: int,
    catalogue: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Rank the catalogue (the split's assets unless given) for each user with test views by query(users,
    view_start, views, their train assets' candidate rows) @ candidate rows (plus each asset's `prior`, when
    given), excluding train assets; Recall@k and NDCG@k of each such user, in user code order.

    `users` are the block's user codes, and user i's train assets are rows view_start[i] : view_start[i] +
    views[i] of the last argument. Assets without a vector rank below every other and above excluded ones.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    split_assets = np.concatenate((split.train_asset, split.test_asset))
    catalogue = np.unique(split_assets if catalogue is None else np.concatenate((catalogue, split_assets)))
    column_of_asset = np.full(len(candidates), -1, dtype=np.int64)
    column_of_asset[catalogue] = np.arange(len(catalogue))
    catalogue_rows = candidates[catalogue]
    no_vector_columns = np.flatnonzero(~has_vector[catalogue])

    by_test_user = np.argsort(split.test_user, kind="stable")
    users, test_first, test_count = np.unique(split.test_user[by_test_user], return_index=True, return_counts=True)
    if users.size == 0:
        return {f"recall_at_{k}": np.empty(0), f"ndcg_at_{k}": np.empty(0)}
    test_columns = np.full((len(users), test_count.max()), -1, dtype=np.int64)
    test_slot = np.arange(len(by_test_user)) - np.repeat(test_first, test_count)
    test_columns[np.repeat(np.arange(len(users)), test_count), test_slot] = column_of_asset[
        split.test_asset[by_test_user]
    ]

    by_train_user = np.argsort(split.train_user, kind="stable")
    train_user = split.train_user[by_train_user]
    train_column = column_of_asset[split.train_asset[by_train_user]]
    train_start = np.searchsorted(train_user, users, side="left")
    train_stop = np.searchsorted(train_user, users, side="right")

    depth = min(k, len(catalogue))
    discount = 1.0 / np.log2(np.arange(depth) + 2.0)
    ideal_dcg = np.cumsum(discount)[np.minimum(test_count, depth) - 1]
    hits = np.zeros(len(users))
    dcg = np.zeros(len(users))
    block_users = max(1, block_cells // len(catalogue))
    for start in range(0, len(users), block_users):
        block = slice(start, min(start + block_users, len(users)))
        views = train_stop[block] - train_start[block]
        view_start = np.cumsum(views) - views
        row_of_view = np.repeat(np.arange(len(views)), views)
        view_columns = train_column[np.arange(views.sum()) + np.repeat(train_start[block] - view_start, views)]
        scores = query(users[block], view_start, views, catalogue_rows[view_columns]) @ catalogue_rows.T
        if prior is not None:
            scores += prior[catalogue]
        scores[:, no_vector_columns] = _NO_VECTOR_SCORE
        scores[row_of_view, view_columns] = -np.inf
        ranked, _ = top_k(scores, np.arange(scores.shape[1]), depth)
        is_hit = (ranked[:, :, None] == test_columns[block][:, None, :]).any(axis=2)
        hits[block] = is_hit.sum(axis=1)
        dcg[block] = np.cumsum(is_hit * discount, axis=1)[:, -1]  # summed best first, reproducibly
    return {f"recall_at_{k}": hits / test_count, f"ndcg_at_{k}": dcg / ideal_dcg}


def genre_precision(
    vectors: np.ndarray,
    split: Split,
    asset_genres: Sequence[Collection[str]],
    k: int = 10,
    min_views: int = 20,
    *,
    block_cells: int = 1 << 23,
) -> float:
    """GenreP@k: over assets with at least `min_views` train views, the mean share of an asset's k nearest
    such assets (cosine, itself excluded) that share at least one genre with it.

    `asset_genres[a]` holds the genres of asset code a. Assets without a vector are never neighbours and
    an eligible one scores 0. When fewer than k other eligible assets have vectors, the share is over
    those there are (0 when there are none). Returns nan when no asset is eligible.
    """
    _check_codes(split, len(vectors))
    views = np.bincount(split.train_asset, minlength=len(vectors))
    return genre_precision_of_views(vectors, views, asset_genres, k=k, min_views=min_views, block_cells=block_cells)


def genre_precision_of_views(
    vectors: np.ndarray, views: np.ndarray, asset_genres: Sequence[Collection[str]], **options
) -> float:
    """genre_precision with each asset's train views given as counts (`views[a]` for asset code a): the mean of
    genre_shares_of_views (whose options it takes)."""
    return term_mean(genre_shares_of_views(vectors, views, asset_genres, **options))


def genre_shares_of_views(
    vectors: np.ndarray,
    views: np.ndarray,
    asset_genres: Sequence[Collection[str]],
    k: int = 10,
    min_views: int = 20,
    *,
    block_cells: int = 1 << 23,
) -> np.ndarray:
    """GenreP@k's terms: each eligible asset's share (in asset code order), empty when none is eligible."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    unit, has_vector = _unit_rows(vectors)
    if len(asset_genres) < len(unit):
        raise ValueError(f"asset_genres covers {len(asset_genres)} assets, vectors have {len(unit)} rows")
    if len(views) != len(unit):
        raise ValueError(f"views covers {len(views)} assets, vectors have {len(unit)} rows")
    eligible = np.flatnonzero(np.asarray(views) >= min_views)
    in_pool = np.flatnonzero(has_vector[eligible])
    pool = eligible[in_pool]
    share = np.zeros(len(eligible))
    neighbours = min(k, len(pool) - 1)
    if neighbours < 1:
        return share
    pool_genres = label_matrix([asset_genres[a] for a in pool])[0].toarray()

    pool_unit = unit[pool]
    block_rows = max(1, block_cells // len(pool))
    for start in range(0, len(pool), block_rows):
        rows = np.arange(start, min(start + block_rows, len(pool)))
        scores = pool_unit[rows] @ pool_unit.T
        scores[np.arange(len(rows)), rows] = -np.inf
        nearest, _ = top_k(scores, np.arange(scores.shape[1]), neighbours)
        shared = (pool_genres[rows][:, None, :] & pool_genres[nearest]).any(axis=2)
        share[in_pool[rows]] = shared.mean(axis=1)
    return share


def evaluate(vectors: np.ndarray, split: Split, asset_genres: Sequence[Collection[str]]) -> dict[str, float]:
    """The protocol's three figures: recall_at_20, ndcg_at_20 and genre_p_at_10."""
    return {**next_watch(vectors, split), "genre_p_at_10": genre_precision(vectors, split, asset_genres)}


def _unit_rows(vectors: np.ndarray, split: Split | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Float64 unit rows, zero where an asset has no vector, and which assets have one; the split's asset
    codes, when given, must have a row."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-d (assets, dim) array, got shape {vectors.shape}")
    if split is not None:
        _check_codes(split, len(vectors))
    finite = np.isfinite(vectors).all(axis=1)
    norms = np.linalg.norm(np.where(finite[:, None], vectors, 0.0), axis=1)
    has_vector = finite & (norms > 0)
    unit = np.zeros_like(vectors)
    unit[has_vector] = vectors[has_vector] / norms[has_vector, None]
    return unit, has_vector


def _check_codes(split: Split, rows: int) -> None:
    """ValueError unless every asset code of the split has a row among `rows` vectors."""
    largest = max((int(a.max()) for a in (split.train_asset, split.test_asset) if a.size), default=-1)
    if largest >= rows:
        raise ValueError(f"asset code {largest} is in the split but vectors has only {rows} rows")


def genre_sets(genres: Sequence[Sequence[str] | None]) -> list[set[str]]:
    """Each asset's genres (a list, or None) as the set GenreP@10 compares."""
    return [set(names or ()) for names in genres]


@dataclass(frozen=True)
class HeldOut:
    """The protocol's split of an events table, in the asset codes of its whole catalogue."""

    split: Split
    asset_ids: pa.Array  # asset id of each code
    genres: list[set[str]]  # genres of each code

    def score(self, embeddings: pa.Table) -> dict[str, float]:
        """The protocol's figures of an (asset_id, vector) table; catalogue assets it lacks have no vector."""
        return evaluate(self._vectors(embeddings), self.split, self.genres)

    def score_tastes(self, embeddings: pa.Table, apps: AppsConfig) -> dict[str, float]:
        """Next-watch figures of film2vec's own recommender (the tastes and recommend uses): each user's
        recency-weighted taste (--half-life-views, --half-life-days) against the asset vectors, by cosine,
        plus the popularity prior of the train views (--popularity-prior), as `film2vec recommend` ranks."""
        split = self.split
        by_user = np.argsort(split.train_user, kind="stable")
        _, counts = np.unique(split.train_user[by_user], return_counts=True)
        seconds = split.train_time[by_user] / 1e6  # the split's times are microseconds
        weights = np.empty(len(by_user))
        weights[by_user] = recency_weights(counts, seconds, apps.half_life_days, apps.half_life_views)
        vectors = self._vectors(embeddings)
        prior = None
        if apps.popularity_prior:
            viewers = np.bincount(split.train_asset, minlength=len(vectors))  # what DIR/assets counts
            prior = popularity_prior(viewers, apps.popularity_prior)
        return next_watch(vectors, split, view_weights=weights, prior=prior)

    def score_recommender(self, user_vectors: np.ndarray, embeddings: pa.Table) -> dict[str, float]:
        """Next-watch figures of a factor model's own ranking, user vector · asset vector: `user_vectors` has a
        row per user code of the split, `embeddings` the asset vectors as an (asset_id, vector) table."""
        return next_watch_of_user_vectors(user_vectors, self._vectors(embeddings), self.split)

    def _vectors(self, embeddings: pa.Table) -> np.ndarray:
        """An (asset_id, vector) table as a matrix with a row per asset code, zero where it has no vector."""
        ids = pd.Index(self.asset_ids.to_pandas())
        given = Vectors.of_table(embeddings)
        rows = ids.get_indexer(given.ids.to_pandas())
        known = rows >= 0
        if not known.any():
            raise InputError("the embeddings share no asset_id with the events' catalogue; are they of these events?")
        found = given.matrix[known]
        vectors = np.zeros((len(ids), found.shape[1]))
        vectors[rows[known]] = found
        return vectors
