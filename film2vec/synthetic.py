"""The planted catalogue: synthetic views whose structure is known, so the vectors can be checked against it.

Assets belong to planted genres and are Zipf-popular within them; each user likes two or three genres
and now and then watches anything popular. Pure numpy, vectorised across users (no loop per user or per
view), in chunks of users so that tens of millions of views fit in a few GB.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from film2vec.config import SyntheticConfig

BUILT_IN_GENRES = (
    "Comedy",
    "Crime",
    "Drama",
    "Documentary",
    "Horror",
    "Romance",
    "Science Fiction",
    "Animation",
    "Thriller",
    "Western",
    "Musical",
    "War",
)
YEAR_START = 1_735_689_600  # 2025-01-01T00:00:00Z
YEAR_END = 1_767_225_600  # 2026-01-01T00:00:00Z
VIEW_COUNT_SIGMA = 1.0  # log-scale spread of views per user: the top 1% watch about 10x the median
OVERSAMPLING = (1.3, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0)  # candidates per missing view, round by round


@dataclass(frozen=True)
class SyntheticCatalogue:
    """Views of a synthetic catalogue plus the planted truth (each asset's genre) to check vectors against."""

    user_id: np.ndarray
    asset_id: np.ndarray
    viewed_at: np.ndarray
    catalogue_ids: np.ndarray
    titles: np.ndarray
    planted_genre: np.ndarray
    genre_names: tuple[str, ...]

    def events_table(self) -> pa.Table:
        """The views as an events table: user_id, asset_id, viewed_at (UTC microseconds)."""
        return pa.table(
            {
                "user_id": pa.array(self.user_id, pa.int64()),
                "asset_id": pa.array(self.asset_id, pa.int64()),
                "viewed_at": pa.array(self.viewed_at * 1_000_000, pa.timestamp("us", tz="UTC")),
            }
        )

    def assets_table(self) -> pa.Table:
        """The catalogue as a metadata table: asset_id, title, genres (a list holding the planted genre)."""
        names = np.asarray(self.genre_names, dtype=object)[self.planted_genre]
        genres = pa.ListArray.from_arrays(
            pa.array(np.arange(len(names) + 1, dtype=np.int32)), pa.array(names, pa.string())
        )
        return pa.table(
            {
                "asset_id": pa.array(self.catalogue_ids, pa.int64()),
                "title": pa.array(self.titles, pa.string()),
                "genres": genres,
            }
        )


@dataclass(frozen=True)
class Popularity:
    """Asset weights laid out genre by genre, most popular first, for one binary search per draw.

    `assets[start[g]:end[g]]` are genre g's asset indices by rank; `cumulative` is the running sum of
    their weights, so a uniform point in a genre's (or the whole catalogue's) span picks an asset.
    """

    assets: np.ndarray
    cumulative: np.ndarray
    start: np.ndarray
    end: np.ndarray

    def draw(self, genre: np.ndarray, off_taste: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """Asset indices: by popularity within `genre`, or over the whole catalogue where `off_taste`."""
        edges = np.concatenate(([0.0], self.cumulative))
        low = np.where(off_taste, 0, self.start[genre])
        high = np.where(off_taste, len(self.assets), self.end[genre])
        point = edges[low] + uniform * (edges[high] - edges[low])
        position = np.searchsorted(self.cumulative, point, side="right")
        return self.assets[np.clip(position, low, high - 1)]


def genre_names(count: int) -> tuple[str, ...]:
    """Readable genre names: the built-in ones first, then "Genre 13", "Genre 14", ..."""
    return tuple(BUILT_IN_GENRES[i] if i < len(BUILT_IN_GENRES) else f"Genre {i + 1}" for i in range(count))


def plant_catalogue(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, Popularity, np.ndarray]:
    """Each asset's genre (near-equal sizes, shuffled), the popularity to draw by, and each asset's rank."""
    planted_genre = rng.permutation(np.arange(config.catalogue_size) % config.genres).astype(np.int32)
    shuffled = rng.permutation(config.catalogue_size)
    assets = shuffled[np.argsort(planted_genre[shuffled], kind="stable")]
    sizes = np.bincount(planted_genre, minlength=config.genres)
    end = np.cumsum(sizes)
    start = end - sizes
    rank_in_layout = np.arange(config.catalogue_size) - np.repeat(start, sizes) + 1
    weights = 1.0 / rank_in_layout**config.popularity_exponent
    rank = np.empty(config.catalogue_size, dtype=np.int64)
    rank[assets] = rank_in_layout
    return planted_genre, Popularity(assets, np.cumsum(weights), start, end), rank


def draw_tastes(users: int, genres: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each user's liked genres (distinct, one row per user) and their cumulative Dirichlet(1) weights.

    Users like 2 or 3 genres (fewer when there are fewer); a row's unused last column has weight 0.
    """
    most = min(3, genres)
    liked = np.empty((users, most), dtype=np.int64)
    for column in range(most):
        # uniform over the genres not liked yet: a draw on the rest, shifted past each taken one in order
        genre = rng.integers(0, genres - column, size=users)
        for taken in np.sort(liked[:, :column], axis=1).T:
            genre += genre >= taken
        liked[:, column] = genre
    weights = rng.standard_gamma(1.0, size=(users, most))
    weights[np.arange(most) >= rng.integers(min(2, genres), most + 1, size=users)[:, None]] = 0.0
    cumulative = np.cumsum(weights, axis=1)
    return liked, cumulative / cumulative[:, -1:]


def draw_view_counts(config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Distinct views wanted per user: lognormal with the configured mean, clipped to [2, catalogue size]."""
    log_mean = np.log(config.views_per_user) - VIEW_COUNT_SIGMA**2 / 2
    counts = np.rint(rng.lognormal(log_mean, VIEW_COUNT_SIGMA, size=config.users))
    return np.clip(counts, 2, config.catalogue_size).astype(np.int64)


def rank_within_runs(sorted_values: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal values (0 for the first of a run)."""
    starts = np.flatnonzero(np.diff(sorted_values, prepend=sorted_values[:1] - 1))
    return np.arange(len(sorted_values)) - np.repeat(starts, np.diff(np.append(starts, len(sorted_values))))


def contains_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each key is in `sorted_keys`; a binary search, as np.isin hashes such keys slowly."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[position] == keys


def first_occurrences(keys: np.ndarray) -> np.ndarray:
    """The distinct keys, each at its first occurrence, in their original order."""
    order = np.argsort(keys, kind="stable")
    first = np.diff(keys[order], prepend=keys[order[:1]] - 1) != 0
    return keys[np.sort(order[first])]


def draw_distinct_views(
    counts: np.ndarray,
    liked: np.ndarray,
    taste_cumulative: np.ndarray,
    popularity: Popularity,
    off_taste_share: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(user, asset) index pairs, distinct, up to `counts[user]` per user, sorted by user then asset.

    Sampling without replacement, vectorised across users: each round draws a few more candidates than
    each user still misses, drops those already seen or repeated (keeping draw order, so the cut is
    random), and keeps as many as missing. A user whose count nears what their tastes can reach may end
    the rounds a few views short.
    """
    catalogue_size = len(popularity.assets)
    seen = np.empty(0, dtype=np.int64)  # user * catalogue_size + asset, sorted
    missing = counts.copy()
    for oversampling in OVERSAMPLING:
        wanting = np.flatnonzero(missing)
        if len(wanting) == 0:
            break
        user = np.repeat(wanting, np.ceil(missing[wanting] * oversampling).astype(np.int64))
        off_taste = rng.random(len(user)) < off_taste_share
        column = (rng.random(len(user))[:, None] >= taste_cumulative[user, :-1]).sum(axis=1)
        asset = popularity.draw(liked[user, column], off_taste, rng.random(len(user)))
        key = user * catalogue_size + asset
        key = first_occurrences(key[~contains_sorted(seen, key)])
        user = key // catalogue_size
        key = key[rank_within_runs(user) < missing[user]]
        missing -= np.bincount(key // catalogue_size, minlength=len(counts))
        seen = np.sort(np.concatenate((seen, key)))
    return seen // catalogue_size, seen % catalogue_size


def generate_catalogue(config: SyntheticConfig, seed: int, *, views_per_chunk: int = 1_000_000) -> SyntheticCatalogue:
    """A synthetic catalogue and its views, the same for the same (config, seed).

    Users are drawn in chunks of about `views_per_chunk` views, which bounds the working memory (the
    chunking is part of the random stream: another chunk size gives other views).
    Example::

        catalogue = generate_catalogue(SyntheticConfig(users=100), seed=0)
        catalogue.events_table().num_rows  # about 3,000
    """
    rng = np.random.default_rng(seed)
    planted_genre, popularity, rank = plant_catalogue(config, rng)
    counts = draw_view_counts(config, rng)
    user_id = np.empty(counts.sum(), dtype=np.int64)
    asset_id = np.empty(counts.sum(), dtype=np.int64)
    filled = 0
    users_per_chunk = max(1, int(views_per_chunk / config.views_per_user))
    for first in range(0, config.users, users_per_chunk):
        chunk_counts = counts[first : first + users_per_chunk]
        liked, taste_cumulative = draw_tastes(len(chunk_counts), config.genres, rng)
        user, asset = draw_distinct_views(
            chunk_counts, liked, taste_cumulative, popularity, config.off_taste_share, rng
        )
        user_id[filled : filled + len(user)] = user + first + 1
        asset_id[filled : filled + len(user)] = asset + 1
        filled += len(user)
    names = genre_names(config.genres)
    return SyntheticCatalogue(
        user_id=user_id[:filled],
        asset_id=asset_id[:filled],
        viewed_at=rng.integers(YEAR_START, YEAR_END, size=filled),
        catalogue_ids=np.arange(1, config.catalogue_size + 1, dtype=np.int64),
        titles=np.array([f"{names[g]} #{r}" for g, r in zip(planted_genre, rank)], dtype=object),
        planted_genre=planted_genre,
        genre_names=names,
    )
