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
        return events_table(self.user_id, self.asset_id, self.viewed_at)

    def assets_table(self) -> pa.Table:
        """The catalogue as a metadata table: asset_id, title, genres (a list holding the planted genre)."""
        return assets_table(self.titles, self.planted_genre, self.genre_names)


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


def draw_view_counts(config: SyntheticConfig, users: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct views wanted by each of `users` users: lognormal with the configured mean, clipped to [2,
    catalogue size]."""
    log_mean = np.log(config.views_per_user) - VIEW_COUNT_SIGMA**2 / 2
    counts = np.rint(rng.lognormal(log_mean, VIEW_COUNT_SIGMA, size=users))
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


@dataclass(frozen=True)
class CataloguePlan:
    """What every chunk of users shares: the planted genres and popularity. Chunk k's users are drawn from a
    random stream of their own, seeded by (seed, k), so chunks can be drawn anywhere, in any order (Spark
    draws them in parallel, in `film2vec generate`) and give the same views."""

    config: SyntheticConfig
    seed: int
    planted_genre: np.ndarray
    popularity: Popularity
    rank: np.ndarray
    users_per_chunk: int

    @property
    def chunks(self) -> int:
        return -(-self.config.users // self.users_per_chunk)

    def chunk_views(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user_id, asset_id, viewed_at in Unix seconds) of chunk `chunk`'s users, sorted by user then asset."""
        rng = np.random.default_rng([self.seed, chunk])
        first = chunk * self.users_per_chunk
        users = min(self.users_per_chunk, self.config.users - first)
        counts = draw_view_counts(self.config, users, rng)
        liked, taste_cumulative = draw_tastes(users, self.config.genres, rng)
        user, asset = draw_distinct_views(
            counts, liked, taste_cumulative, self.popularity, self.config.off_taste_share, rng
        )
        return user + first + 1, asset + 1, rng.integers(YEAR_START, YEAR_END, size=len(user))

    def events_chunk(self, chunk: int) -> pa.Table:
        """Chunk `chunk`'s views as an events table (see SyntheticCatalogue.events_table)."""
        return events_table(*self.chunk_views(chunk))

    @property
    def titles(self) -> np.ndarray:
        """Each asset's title: its genre and its popularity rank there ("Comedy #1" is the most watched comedy)."""
        names = genre_names(self.config.genres)
        return np.array([f"{names[g]} #{r}" for g, r in zip(self.planted_genre, self.rank)], dtype=object)

    def assets_table(self) -> pa.Table:
        """The catalogue as a metadata table (see SyntheticCatalogue.assets_table)."""
        return assets_table(self.titles, self.planted_genre, genre_names(self.config.genres))


def plan_catalogue(config: SyntheticConfig, seed: int, *, views_per_chunk: int = 1_000_000) -> CataloguePlan:
    """The planted catalogue of (config, seed), with users in chunks of about `views_per_chunk` views, which
    bounds the working memory of drawing one (the chunking is part of the random streams: another chunk size
    gives other views)."""
    planted_genre, popularity, rank = plant_catalogue(config, np.random.default_rng(seed))
    users_per_chunk = max(1, int(views_per_chunk / config.views_per_user))
    return CataloguePlan(config, seed, planted_genre, popularity, rank, users_per_chunk)


def assets_table(titles: np.ndarray, planted_genre: np.ndarray, names: tuple[str, ...]) -> pa.Table:
    """asset_id (1, 2, …), title and genres (a list holding the planted genre's name)."""
    genres = pa.ListArray.from_arrays(
        pa.array(np.arange(len(titles) + 1, dtype=np.int32)),
        pa.array(np.asarray(names, dtype=object)[planted_genre], pa.string()),
    )
    return pa.table(
        {
            "asset_id": pa.array(np.arange(1, len(titles) + 1), pa.int64()),
            "title": pa.array(titles, pa.string()),
            "genres": genres,
        }
    )


def events_table(user_id: np.ndarray, asset_id: np.ndarray, viewed_at: np.ndarray) -> pa.Table:
    """Views as an events table: user_id, asset_id, viewed_at (from Unix seconds to UTC microseconds)."""
    return pa.table(
        {
            "user_id": pa.array(user_id, pa.int64()),
            "asset_id": pa.array(asset_id, pa.int64()),
            "viewed_at": pa.array(viewed_at * 1_000_000, pa.timestamp("us", tz="UTC")),
        }
    )


def generate_catalogue(config: SyntheticConfig, seed: int, *, views_per_chunk: int = 1_000_000) -> SyntheticCatalogue:
    """A synthetic catalogue and its views in memory, the same for the same (config, seed) as `film2vec generate`
    writes (see plan_catalogue for the chunks).
    Example::

        catalogue = generate_catalogue(SyntheticConfig(users=100), seed=0)
        catalogue.events_table().num_rows  # about 3,000
    """
    plan = plan_catalogue(config, seed, views_per_chunk=views_per_chunk)
    user_id, asset_id, viewed_at = (np.concatenate(part) for part in zip(*map(plan.chunk_views, range(plan.chunks))))
    return SyntheticCatalogue(
        user_id=user_id,
        asset_id=asset_id,
        viewed_at=viewed_at,
        catalogue_ids=np.arange(1, config.catalogue_size + 1, dtype=np.int64),
        titles=plan.titles,
        planted_genre=plan.planted_genre,
        genre_names=genre_names(config.genres),
    )
