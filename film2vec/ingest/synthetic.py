"""The planted catalogue: synthetic views whose structure is known, so the vectors can be checked against it.

What real viewing has, each a setting of SyntheticConfig: genres of Zipf size and audience, assets Zipf-popular
within them, some with two or three genres; assets released over the year (a back catalogue before it), most
watched soon after release; users active for a while, liking two or three genres with weights that drift from
their first view to their last, now and then watching anything popular or anything at all, binging (views logged
at one second), and a few heavy users who watch many times as much as most. Pure numpy, vectorised across users
(no loop per user or per view), in chunks of users so that tens of millions of views fit in a few GB.
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
YEAR_START = 1_735_689_600  # 2025-01-01T00:00:00Z: the first view; the back catalogue comes out in the year before
YEAR_END = 1_767_225_600  # 2026-01-01T00:00:00Z
YEAR = YEAR_END - YEAR_START
DAY = 86_400
MOST_GENRES = 3  # an asset's planted genres, and a user's liked ones, at most
VIEW_COUNT_SIGMA = 1.0  # log-scale spread of views per user: the top 1% watch about 10x the median (heavy users more)
OVERSAMPLING = (1.3, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0)  # candidates per missing view, round by round


@dataclass(frozen=True)
class SyntheticCatalogue:
    """Views of a synthetic catalogue plus the planted truth (each asset's genres and release) to check vectors
    against. `planted_genres` has a row of MOST_GENRES genre indices per asset, the asset's own genre
    (`planted_genre`) first and -1 past its last."""

    user_id: np.ndarray
    asset_id: np.ndarray
    viewed_at: np.ndarray
    catalogue_ids: np.ndarray
    titles: np.ndarray
    planted_genre: np.ndarray
    planted_genres: np.ndarray
    released_at: np.ndarray
    genre_names: tuple[str, ...]

    def events_table(self) -> pa.Table:
        """The views as an events table: user_id, asset_id, viewed_at (UTC microseconds)."""
        return events_table(self.user_id, self.asset_id, self.viewed_at)

    def assets_table(self) -> pa.Table:
        """The catalogue as a metadata table: asset_id, title, genres (the planted genres, its own first)."""
        return assets_table(self.titles, self.planted_genres, self.genre_names)


@dataclass(frozen=True)
class Popularity:
    """What a view picks from at its time, laid out in segments: each genre's assets, then the whole catalogue as
    the last segment; slots `start[s]:end[s]` are segment s's assets in release order.

    At age τ ≥ 0 an asset draws attention weight · (1 + boost · 2^(−τ / half_life)): a lasting part and a
    release part. `lasting` and `fresh` are running sums within each segment of weight and of weight ·
    2^((released − YEAR_END) / half_life), so the slots released by time t give both parts' mass at t (the release
    part's is boost · 2^((YEAR_END − t) / half_life) times its sum), and a uniform point in one part's mass picks
    an asset by a binary search.
    """

    assets: np.ndarray
    released: np.ndarray
    lasting: np.ndarray
    fresh: np.ndarray
    start: np.ndarray
    end: np.ndarray
    boost: float
    half_life: float

    @property
    def whole_catalogue(self) -> int:
        """The segment of every asset: where views off taste, and views of a genre with nothing out yet, go."""
        return len(self.start) - 1

    def released_by(self, segment: np.ndarray, viewed_at: np.ndarray) -> np.ndarray:
        """The end of each segment's slots released by `viewed_at` (its start when none is)."""
        return search_within(self.released, self.start[segment], self.end[segment], viewed_at)

    def draw(
        self, segment: np.ndarray, viewed_at: np.ndarray, popular: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Asset indices released by `viewed_at`, from `segment`: by attention at that time where `popular`,
        uniformly elsewhere. A genre with nothing out yet leaves the view to the whole catalogue."""
        high = self.released_by(segment, viewed_at)
        empty = high == self.start[segment]
        segment = np.where(empty, self.whole_catalogue, segment)
        high[empty] = self.released_by(segment[empty], viewed_at[empty])
        low = self.start[segment]
        lasting, fresh = self.lasting[high - 1], self.fresh[high - 1]
        fresh_mass = self.boost * np.exp2((YEAR_END - viewed_at) / self.half_life) * fresh
        from_fresh = rng.random(len(segment)) * (lasting + fresh_mass) >= lasting
        point = rng.random(len(segment)) * np.where(from_fresh, fresh, lasting)
        by_attention = np.where(
            from_fresh,
            search_within(self.fresh, low, high, point),
            search_within(self.lasting, low, high, point),
        )
        uniformly = low + (rng.random(len(segment)) * (high - low)).astype(np.int64)
        return self.assets[np.where(popular, np.minimum(by_attention, high - 1), uniformly)]


@dataclass(frozen=True)
class Viewers:
    """A chunk of users: liked genres (up to MOST_GENRES columns), their weights at the first and at the last
    view of the user's active period (rows summing to 1; a 0 is a genre not liked then), and that period (its
    start and length in seconds)."""

    liked: np.ndarray
    early: np.ndarray
    late: np.ndarray
    active_from: np.ndarray
    active_for: np.ndarray

    def genre_at(self, user: np.ndarray, progress: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """The genre a view of `user` at `progress` (0 to 1) through the active period goes to: the weights move
        from early to late as the user goes."""
        weights = self.early[user] * (1 - progress)[:, None] + self.late[user] * progress[:, None]
        column = (uniform[:, None] >= np.cumsum(weights, axis=1)[:, :-1]).sum(axis=1)
        return self.liked[user, column]


def genre_names(count: int) -> tuple[str, ...]:
    """Readable genre names: the built-in ones first, then "Genre 13", "Genre 14", ..."""
    return tuple(BUILT_IN_GENRES[i] if i < len(BUILT_IN_GENRES) else f"Genre {i + 1}" for i in range(count))


def genre_shares(config: SyntheticConfig) -> np.ndarray:
    """Each genre's share of the catalogue and of users' liking: Zipf by genre index (genre 0 the largest)."""
    weights = 1.0 / np.arange(1, config.genres + 1) ** config.genre_exponent
    return weights / weights.sum()


def genre_sizes(catalogue_size: int, shares: np.ndarray) -> np.ndarray:
    """Assets per genre in proportion to `shares` (largest remainders), at least one each when there are enough."""
    sizes = np.full(len(shares), 1 if catalogue_size >= len(shares) else 0, dtype=np.int64)
    quota = (catalogue_size - sizes.sum()) * shares
    sizes += np.floor(quota).astype(np.int64)
    by_remainder = np.argsort(np.floor(quota) - quota, kind="stable")
    sizes[by_remainder[: catalogue_size - sizes.sum()]] += 1
    return sizes


def add_distinct_genres(taken: np.ndarray, more: int, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`taken` (one row of distinct genres per row) with `more` columns appended, each a genre drawn ∝ `shares`
    among those the row has not taken yet.

    Exact and loop-free across rows: integer weights, a draw on the rest of the mass, shifted past each taken
    genre's span in order (`more` must leave a genre to draw)."""
    weights = np.maximum(np.rint(shares * 2.0**40), 1).astype(np.int64)
    before = np.cumsum(weights) - weights
    for _ in range(more):
        point = rng.integers(0, weights.sum() - weights[taken].sum(axis=1))
        for genre in np.sort(taken, axis=1).T:
            point += np.where(point >= before[genre], weights[genre], 0)
        taken = np.column_stack((taken, np.searchsorted(before, point, side="right") - 1))
    return taken


def running_sums(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at each segment `start[s]:end[s]`, each summed on its own so that a segment of
    tiny values keeps its precision (a loop over segments, not over views)."""
    sums = np.empty_like(values)
    for low, high in zip(start.tolist(), end.tolist()):
        np.cumsum(values[low:high], out=sums[low:high])
    return sums


def search_within(values: np.ndarray, low: np.ndarray, high: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each element, where `target` goes in `values[low:high]` (ascending there), after equal values: a
    binary search over every element's own span at once (np.searchsorted(..., side="right") + low)."""
    low, high = np.array(low, dtype=np.int64), np.array(high, dtype=np.int64)
    searching = low < high
    while searching.any():
        middle = (low + high) // 2
        right = values[np.minimum(middle, len(values) - 1)] <= target
        low = np.where(searching & right, middle + 1, low)
        high = np.where(searching & ~right, middle, high)
        searching = low < high
    return low


def yearly_attention(appeal: np.ndarray, released: np.ndarray, boost: float, half_life: float) -> np.ndarray:
    """Each asset's attention summed over the year of views (its integral from release, or the year's start, to
    the year's end): what orders a genre's titles."""
    out = np.maximum(released, YEAR_START)
    decayed = np.exp2((released - out) / half_life) - np.exp2((released - YEAR_END) / half_life)
    return appeal * ((YEAR_END - out) + boost * half_life / np.log(2) * decayed)


def lay_out_popularity(
    planted_genres: np.ndarray, appeal: np.ndarray, released: np.ndarray, config: SyntheticConfig
) -> Popularity:
    """The Popularity to draw from: an asset's appeal in each genre it carries, and its appeal times its own
    genre's share in the whole catalogue (so that anything-popular views favour big genres as tastes do)."""
    size = len(appeal)
    carried = planted_genres >= 0
    asset_of_slot = np.concatenate((np.nonzero(carried)[0], np.arange(size)))
    segment_of_slot = np.concatenate((planted_genres[carried], np.full(size, config.genres)))
    slots = np.lexsort((asset_of_slot, released[asset_of_slot], segment_of_slot))
    asset_of_slot, segment_of_slot = asset_of_slot[slots], segment_of_slot[slots]
    end = np.cumsum(np.bincount(segment_of_slot, minlength=config.genres + 1))
    start = end - np.diff(end, prepend=0)
    own_share = genre_shares(config)[planted_genres[asset_of_slot, 0]]
    weight = appeal[asset_of_slot] * np.where(segment_of_slot == config.genres, own_share, 1.0)
    slot_released = released[asset_of_slot]
    half_life = config.release_half_life_days * DAY
    return Popularity(
        assets=asset_of_slot,
        released=slot_released,
        lasting=running_sums(weight, start, end),
        fresh=running_sums(weight * np.exp2((slot_released - YEAR_END) / half_life), start, end),
        start=start,
        end=end,
        boost=config.release_boost,
        half_life=half_life,
    )


def plant_catalogue(
    config: SyntheticConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, Popularity, np.ndarray]:
    """Each asset's planted genres (see SyntheticCatalogue), its release time, the popularity to draw by, and its
    rank in its own genre by attention over the year (1: the most watched, in expectation).

    Genres are Zipf-sized. An asset's appeal is its Zipf share of its own genre (at a random rank), the same in
    every genre it carries, so a small genre's own titles hold their own there against big genres' ones."""
    shares = genre_shares(config)
    size = config.catalogue_size
    own = rng.permutation(np.repeat(np.arange(config.genres), genre_sizes(size, shares)))
    zipf = np.empty(size)
    order = rng.permutation(size)
    order = order[np.argsort(own[order], kind="stable")]  # each genre's assets, at random ranks
    zipf[order] = 1.0 / (rank_within_runs(own[order]) + 1.0) ** config.popularity_exponent
    appeal = zipf / np.bincount(own, weights=zipf, minlength=config.genres)[own]

    extra = min(MOST_GENRES - 1, config.genres - 1)
    genres = add_distinct_genres(own[:, None], extra, shares, rng)
    multi = rng.random(size) < config.multi_genre_share
    carried = np.where(multi, 2 + (rng.random(size) < 0.5), 1)  # two or three genres, half each
    genres = np.where(np.arange(1 + extra) < carried[:, None], genres, -1)
    planted_genres = np.full((size, MOST_GENRES), -1, dtype=np.int32)
    planted_genres[:, : 1 + extra] = genres

    back_catalogue = rng.permutation(size) < max(1, round(config.back_catalogue_share * size))  # one at least
    released = YEAR_START + np.floor((rng.random(size) - back_catalogue) * YEAR).astype(np.int64)

    attention = yearly_attention(appeal, released, config.release_boost, config.release_half_life_days * DAY)
    by_attention = np.lexsort((-attention, own))
    rank = np.empty(size, dtype=np.int64)
    rank[by_attention] = rank_within_runs(own[by_attention]) + 1
    return planted_genres, released, lay_out_popularity(planted_genres, appeal, released, config), rank


def draw_tastes(
    users: int, shares: np.ndarray, drift: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's liked genres (distinct, drawn ∝ `shares`) and their weights at the first and the last view.

    At either end a user likes 2 or 3 of them (fewer when there are fewer) with Dirichlet(1) weights, 0 for the
    others; the late weights move `drift` of the way to an independent such draw."""
    most = min(MOST_GENRES, len(shares))
    liked = add_distinct_genres(np.empty((users, 0), dtype=np.int64), most, shares, rng)
    early = taste_weights(users, most, rng)
    return liked, early, (1 - drift) * early + drift * taste_weights(users, most, rng)


def taste_weights(users: int, most: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of `most` weights summing to 1: Dirichlet(1) over 2 to `most` random columns (1 when `most` is 1)."""
    weights = rng.standard_gamma(1.0, size=(users, most))
    liking = rng.integers(min(2, most), most + 1, size=users)
    weights[np.argsort(rng.random((users, most)), axis=1) >= liking[:, None]] = 0.0
    return weights / weights.sum(axis=1, keepdims=True)


def draw_viewers(config: SyntheticConfig, users: int, rng: np.random.Generator) -> Viewers:
    """A chunk of users: tastes (see draw_tastes) and an active period of exponential length inside the year."""
    liked, early, late = draw_tastes(users, genre_shares(config), config.taste_drift, rng)
    active_for = np.minimum(rng.exponential(config.active_days * DAY, size=users), YEAR).astype(np.int64)
    active_from = YEAR_START + (rng.random(users) * (YEAR - active_for)).astype(np.int64)
    return Viewers(liked, early, late, active_from, active_for)


def draw_view_counts(config: SyntheticConfig, users: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct views wanted by each of `users` users, clipped to [2, catalogue size]: lognormal, times
    heavy_user_factor for heavy users, with views_per_user as the mean before clipping."""
    heavy = rng.random(users) < config.heavy_user_share
    mean_factor = 1 + config.heavy_user_share * (config.heavy_user_factor - 1)
    log_mean = np.log(config.views_per_user / mean_factor) - VIEW_COUNT_SIGMA**2 / 2
    counts = rng.lognormal(log_mean, VIEW_COUNT_SIGMA, size=users) * np.where(heavy, config.heavy_user_factor, 1.0)
    return np.clip(np.rint(counts), 2, config.catalogue_size).astype(np.int64)


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
    """The index of each distinct key's first occurrence, in their original order."""
    order = np.argsort(keys, kind="stable")
    first = np.diff(keys[order], prepend=keys[order[:1]] - 1) != 0
    return np.sort(order[first])


def draw_distinct_views(
    counts: np.ndarray,
    viewers: Viewers,
    popularity: Popularity,
    config: SyntheticConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, asset, viewed_at) of distinct (user, asset) views, up to `counts[user]` per user, sorted by user then
    asset.

    A view's time is uniform in its user's active period; its genre follows the user's tastes at that point,
    and its asset is out by then (Popularity.draw). Sampling without replacement, vectorised across users: each
    round draws a few more candidates than each user still misses, drops those already seen or repeated
    (keeping draw order, so the cut is random), and keeps as many as missing. A user whose count nears what
    their tastes can reach may end the rounds a few views short.
    """
    size = config.catalogue_size
    seen = np.empty(0, dtype=np.int64)  # user * size + asset, sorted
    seen_at = np.empty(0, dtype=np.int64)
    missing = counts.copy()
    for oversampling in OVERSAMPLING:
        wanting = np.flatnonzero(missing)
        if len(wanting) == 0:
            break
        user = np.repeat(wanting, np.ceil(missing[wanting] * oversampling).astype(np.int64))
        progress = rng.random(len(user))
        viewed_at = viewers.active_from[user] + (progress * viewers.active_for[user]).astype(np.int64)
        kind = rng.random(len(user))  # noise below noise_share, anything popular up to off_taste_share more
        genre = viewers.genre_at(user, progress, rng.random(len(user)))
        off_taste = kind < config.noise_share + config.off_taste_share
        segment = np.where(off_taste, popularity.whole_catalogue, genre)
        key = user * size + popularity.draw(segment, viewed_at, kind >= config.noise_share, rng)
        new = np.flatnonzero(~contains_sorted(seen, key))
        new = new[first_occurrences(key[new])]
        new = new[rank_within_runs(user[new]) < missing[user[new]]]
        missing -= np.bincount(user[new], minlength=len(counts))
        seen, seen_at = np.concatenate((seen, key[new])), np.concatenate((seen_at, viewed_at[new]))
        order = np.argsort(seen, kind="stable")
        seen, seen_at = seen[order], seen_at[order]
    return seen // size, seen % size, seen_at


def binge_sessions(user: np.ndarray, viewed_at: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """The view times with binge sessions logged at once, as real logs tie a user's views to one second.

    In each user's time order a view joins the next one's session with probability 1 − √(1 − share), so that
    about `share` of views (a little less for users with few) share their second with another view; a session
    is logged at its last view's time, which keeps every view after its release and inside the active period.
    """
    order = np.lexsort((viewed_at, user))
    joins_next = rng.random(len(order)) < 1 - np.sqrt(1 - share)
    joins_next[:-1] &= user[order][1:] == user[order][:-1]
    joins_next[-1:] = False
    session_end = np.flatnonzero(~joins_next)
    logged = np.empty_like(viewed_at)
    logged[order] = viewed_at[order][session_end[np.searchsorted(session_end, np.arange(len(order)))]]
    return logged


@dataclass(frozen=True)
class CataloguePlan:
    """What every chunk of users shares: the planted genres, releases and popularity. Chunk k's users are drawn
    from a random stream of their own, seeded by (seed, k), so chunks can be drawn anywhere, in any order (Spark
    draws them in parallel, in `film2vec generate`) and give the same views."""

    config: SyntheticConfig
    seed: int
    planted_genres: np.ndarray
    released_at: np.ndarray
    popularity: Popularity
    rank: np.ndarray
    users_per_chunk: int

    @property
    def planted_genre(self) -> np.ndarray:
        """Each asset's own genre (the first of its planted genres)."""
        return np.ascontiguousarray(self.planted_genres[:, 0])

    @property
    def chunks(self) -> int:
        return -(-self.config.users // self.users_per_chunk)

    def chunk_views(self, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user_id, asset_id, viewed_at in Unix seconds) of chunk `chunk`'s users, sorted by user then asset."""
        rng = np.random.default_rng([self.seed, chunk])
        first = chunk * self.users_per_chunk
        users = min(self.users_per_chunk, self.config.users - first)
        counts = draw_view_counts(self.config, users, rng)
        viewers = draw_viewers(self.config, users, rng)
        user, asset, viewed_at = draw_distinct_views(counts, viewers, self.popularity, self.config, rng)
        return user + first + 1, asset + 1, binge_sessions(user, viewed_at, self.config.binge_share, rng)

    def events_chunk(self, chunk: int) -> pa.Table:
        """Chunk `chunk`'s views as an events table (see SyntheticCatalogue.events_table)."""
        return events_table(*self.chunk_views(chunk))

    @property
    def titles(self) -> np.ndarray:
        """Each asset's title: its own genre and its rank there ("Comedy #1" is the most watched comedy)."""
        names = genre_names(self.config.genres)
        return np.array([f"{names[g]} #{r}" for g, r in zip(self.planted_genre, self.rank)], dtype=object)

    def assets_table(self) -> pa.Table:
        """The catalogue as a metadata table (see SyntheticCatalogue.assets_table)."""
        return assets_table(self.titles, self.planted_genres, genre_names(self.config.genres))


def plan_catalogue(config: SyntheticConfig, seed: int, *, views_per_chunk: int = 1_000_000) -> CataloguePlan:
    """The planted catalogue of (config, seed), with users in chunks of about `views_per_chunk` views, which
    bounds the working memory of drawing one (the chunking is part of the random streams: another chunk size
    gives other views)."""
    planted_genres, released_at, popularity, rank = plant_catalogue(config, np.random.default_rng(seed))
    users_per_chunk = max(1, int(views_per_chunk / config.views_per_user))
    return CataloguePlan(config, seed, planted_genres, released_at, popularity, rank, users_per_chunk)


def assets_table(titles: np.ndarray, planted_genres: np.ndarray, names: tuple[str, ...]) -> pa.Table:
    """asset_id (1, 2, …), title and genres (the names of an asset's planted genres, its own first)."""
    planted = planted_genres >= 0
    genres = pa.ListArray.from_arrays(
        pa.array(np.concatenate(([0], np.cumsum(planted.sum(axis=1)))).astype(np.int32)),
        pa.array(np.asarray(names, dtype=object)[planted_genres[planted]], pa.string()),
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
        planted_genres=plan.planted_genres,
        released_at=plan.released_at,
        genre_names=genre_names(config.genres),
    )


def catalogue_statistics(user: np.ndarray, asset: np.ndarray, viewed_at: np.ndarray) -> dict[str, float]:
    """The shape of a views table, to hold the synthetic catalogue beside real data: views per user and per
    (viewed) asset at the 50th, 90th and 99th percentiles and the most, the Gini coefficient of views over
    assets, the share of views on the top 1% of assets, and the share of views at the same second as another
    view of the same user (binges, batch imports)."""
    _, per_user = np.unique(user, return_counts=True)
    _, per_asset = np.unique(asset, return_counts=True)
    statistics = {"views": float(len(user)), "users": float(len(per_user)), "assets": float(len(per_asset))}
    for name, counts in (("user", per_user), ("asset", per_asset)):
        for quantile in (50, 90, 99):
            statistics[f"views_per_{name}_p{quantile}"] = float(np.percentile(counts, quantile))
        statistics[f"views_per_{name}_max"] = float(counts.max())
    ascending = np.sort(per_asset)
    count = len(ascending)
    statistics["asset_gini"] = float((2 * np.arange(1, count + 1) - count - 1) @ ascending / (count * ascending.sum()))
    statistics["top_1pct_asset_share"] = float(ascending[-max(1, round(count / 100)) :].sum() / len(asset))
    _, same_second = np.unique(np.column_stack((user, viewed_at)), axis=0, return_counts=True)
    statistics["tied_view_share"] = float(same_second[same_second > 1].sum() / len(user))
    return statistics
