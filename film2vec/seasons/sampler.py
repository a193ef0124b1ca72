"""The sampler's per-partition functions: Arrow batches of walk lists in, Arrow batches of samples out.

Pure numpy and pyarrow around the kernels of film2vec.seasons.walks, with no Spark: film2vec.seasons.stage maps
them over a DataFrame's partitions (mapInArrow, applyInArrow), benchmarks and studies call them directly.

Example::

    origins = sampling_plan(config.seasons, catalogue_views, origin_views)
    step = coview_step(stream_key(seed, season), season, origins, config.seasons.negatives)
    samples = pa.Table.from_batches(step(neighbour_batches))
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from film2vec.config import SeasonsConfig
from film2vec.errors import InputError
from film2vec.seasons.spark_hash import xxhash64
from film2vec.seasons.walks import (
    Negatives,
    Origins,
    bipartite_samples,
    bipartite_users,
    coview_samples,
    draw_keys,
    origin_chunks,
    origin_streams,
    positions_in_lists,
    samples_by_member,
    unigram_cumulative,
)

SAMPLE_ARROW_SCHEMA = pa.schema(
    [
        ("season", pa.int32()),
        ("draw", pa.int64()),
        ("origin", pa.int32()),
        ("target", pa.int32()),
    ]
)
SAMPLES_PER_CHUNK = 1 << 13  # samples made per kernel call: the kernels' arrays stay in the CPU caches


def sampling_plan(config: SeasonsConfig, catalogue_views: np.ndarray, origin_views: np.ndarray) -> Origins:
    """How many samples each origin gets, from the views of every asset (by index) and of the assets that can
    be origins: --samples-per-view times the origins' views in all, so a season's size follows the evidence; at
    most --season-samples-per-asset times the origins, cut from the most viewed origins (Origins.capped)."""
    if len(catalogue_views) < 3:
        raise InputError(f"{len(catalogue_views)} assets in the catalogue; negatives need at least 3")
    if len(origin_views) == 0:
        raise InputError("no asset shares a viewer with another asset, so there is no walk to sample")
    samples = season_samples(config, origin_views)
    if config.origin_distribution == "views":
        by_views = samples_by_views(config, origin_views)
        unbounded = Origins.weighted(by_views, config.origin_exponent, origin_views)
        return unbounded if samples == by_views else unbounded.capped(samples, origin_views)
    return Origins(max(1, round(samples / len(origin_views))))


def samples_by_views(config: SeasonsConfig, origin_views: np.ndarray) -> float:
    """--samples-per-view times the views of the assets the walk starts from: a season's size before its bound."""
    return config.samples_per_view * float(np.sum(origin_views, dtype=np.float64))


def season_samples(config: SeasonsConfig, origin_views: np.ndarray) -> float:
    """A season's samples on average: samples_by_views, at most --season-samples-per-asset times the assets the
    walk starts from."""
    by_views = samples_by_views(config, origin_views)
    if config.season_samples_per_asset is None:
        return by_views
    return min(by_views, config.season_samples_per_asset * len(origin_views))


def negatives_plan(config: SeasonsConfig, catalogue_views: np.ndarray) -> Negatives:
    """The negatives of every sample, from the views of every asset (by index): uniform over the other assets,
    or ∝ views**unigram_exponent."""
    cumulative = None
    if config.negative_distribution == "unigram":
        cumulative = unigram_cumulative(catalogue_views, config.unigram_exponent)
    return Negatives(config.negatives, len(catalogue_views), cumulative)


def sample_batch(season: int, origin: np.ndarray, sample: np.ndarray, target: np.ndarray) -> pa.RecordBatch:
    """A season's rows: its number, each sample's draw key, origin and target (negatives are drawn where they
    are used, from the draw key)."""
    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.full(len(origin), season, dtype=np.int32)),
            pa.array(draw_keys(origin, sample)),
            pa.array(origin.astype(np.int32, copy=False)),
            pa.array(target.astype(np.int32, copy=False)),
        ],
        schema=SAMPLE_ARROW_SCHEMA,
    )


def _list_parts(lists: pa.ListArray) -> tuple[np.ndarray, pa.Array]:
    """Offsets from 0 and the flat values of an Arrow list column."""
    offsets = lists.offsets.to_numpy()
    return offsets - offsets[0], lists.flatten()


def _chunked_origins(batch: pa.RecordBatch, key: np.uint64, origins: Origins, list_column: str):
    """(origins, counts, offsets, values) per chunk of about SAMPLES_PER_CHUNK samples of an origin batch."""
    origin = batch.column("origin").to_numpy()
    counts = origins.counts(origin_streams(key, origin), batch.column("views").to_numpy())
    offsets, values = _list_parts(batch.column(list_column))
    for start, stop in origin_chunks(counts, SAMPLES_PER_CHUNK):
        low, high = offsets[start], offsets[stop]
        yield origin[start:stop], counts[start:stop], offsets[start : stop + 1] - low, values, (low, high)


WEIGHT_SCALE = 2**20  # fractional co_views (--user-weighting inverse) in units of 2**-20


def integer_weights(co_views: np.ndarray) -> np.ndarray:
    """co_views as the sampler's exact integer weights: counts as they are, fractional weights (the
    1/(n−1) user weighting) in units of 2**-20, at least 1, so a 1/10,000 weight is off by under 0.1%."""
    if np.issubdtype(co_views.dtype, np.integer):
        return co_views.astype(np.int64, copy=False)
    return np.maximum(np.rint(co_views * WEIGHT_SCALE), 1).astype(np.int64)


def coview_step(key: np.uint64, season: int, origins: Origins, negatives: int):
    """The co-view walk as a mapInArrow function: (origin, views, neighbours, co_views) batches → samples."""

    def sample(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            co_views = integer_weights(batch.column("co_views").flatten().to_numpy())
            for origin, counts, offsets, neighbours, (low, high) in _chunked_origins(batch, key, origins, "neighbours"):
                yield sample_batch(
                    season,
                    *coview_samples(
                        key,
                        origin,
                        counts,
                        offsets,
                        neighbours.slice(low, high - low).to_numpy(),
                        co_views[low:high],
                        negatives,
                    ),
                )

    return sample


def bipartite_first_step(key: np.uint64, origins: Origins, negatives: int):
    """The bipartite walk's first step as a mapInArrow function: (origin, views, users) → (user_id, origin, samples),
    one row per (origin, user) drawn with the numbers of its samples, so the shuffle moves a row per viewing."""

    def first_step(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for origin, counts, offsets, users, (low, _) in _chunked_origins(batch, key, origins, "users"):
                group_origin, position, group_offsets, sample = samples_by_member(
                    *bipartite_users(key, origin, counts, offsets, negatives)
                )
                yield pa.RecordBatch.from_arrays(
                    [
                        users.take(pa.array(position + low)),
                        pa.array(group_origin),
                        pa.ListArray.from_arrays(
                            pa.array(group_offsets.astype(np.int32)), pa.array(sample.astype(np.int32))
                        ),
                    ],
                    names=["user_id", "origin", "samples"],
                )

    return first_step


def bipartite_second_step(key: np.uint64, season: int, negatives: int, window: int = 0):
    """The second step for one user bucket: (user_id, origin, samples) and (user_id, assets) → samples; with a
    `window`, the users' assets are in viewing order and each target within `window` views of its origin."""

    def second_step(choices: pa.Table, lists: pa.Table) -> pa.Table:
        offsets, assets = _list_parts(lists.column("assets").combine_chunks())
        assets, sizes = assets.to_numpy(), np.diff(offsets)
        sample_offsets, sample = _list_parts(choices.column("samples").combine_chunks())
        per_group = np.diff(sample_offsets)
        row = pc.index_in(choices.column("user_id"), value_set=lists.column("user_id")).to_numpy()
        row = np.repeat(row, per_group)
        origin, sample = np.repeat(choices.column("origin").to_numpy(), per_group), sample.to_numpy()
        origin_at = positions_in_lists(offsets, assets, row, origin) if window else None
        batches = [
            sample_batch(
                season,
                *bipartite_samples(
                    key,
                    origin[start:stop],
                    sample[start:stop],
                    offsets[row[start:stop]],
                    sizes[row[start:stop]],
                    assets,
                    negatives,
                    window,
                    None if origin_at is None else origin_at[start:stop],
                ),
            )
            for start, stop in _ranges(len(origin), SAMPLES_PER_CHUNK)
        ]
        return pa.Table.from_batches(batches, schema=SAMPLE_ARROW_SCHEMA)

    return second_step


def season_table(
    key: np.uint64,
    season: int,
    origins: Origins,
    negatives: int,
    window: int,
    origin_lists: pa.Table,
    user_lists: pa.Table | None = None,
) -> pa.Table:
    """A whole season drawn in this process, in draw order: the rows the Spark job draws from the same lists
    (the walk's origin lists; for the bipartite walk its user lists too, in one bucket), since every row is a
    function of its draw alone."""
    batches = origin_lists.to_batches()
    if user_lists is None:
        drawn = pa.Table.from_batches(coview_step(key, season, origins, negatives)(batches), SAMPLE_ARROW_SCHEMA)
    else:
        choices = pa.Table.from_batches(bipartite_first_step(key, origins, negatives)(batches))
        drawn = bipartite_second_step(key, season, negatives, window)(choices, user_lists)
    return drawn.take(np.argsort(drawn.column("draw").to_numpy(), kind="stable"))


def _groups(keys: pa.ChunkedArray, values: pa.ChunkedArray) -> tuple[pa.Array, pa.ListArray]:
    """The distinct keys of rows sorted by key, and the values of each key's run as a list."""
    keys, values = keys.combine_chunks(), values.combine_chunks()
    changes = pc.not_equal(keys.slice(1), keys.slice(0, max(len(keys) - 1, 0))).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.concatenate(([len(keys) > 0], changes)))
    offsets = pa.array(np.append(starts, len(keys)).astype(np.int32))
    return keys.take(pa.array(starts)), pa.ListArray.from_arrays(offsets, values)


def coview_lists_from_edges(edges: pa.Table, views_of: np.ndarray) -> pa.Table:
    """The co-view walk's (origin, views, neighbours, co_views) lists, as seasons.neighbour_lists makes them in
    Spark, from (origin, neighbour, co_views) edges and each asset index's views."""
    edges = edges.sort_by([("origin", "ascending"), ("neighbour", "ascending")])
    origin, neighbours = _groups(edges.column("origin"), edges.column("neighbour"))
    _, co_views = _groups(edges.column("origin"), edges.column("co_views"))
    views = pa.array(views_of[origin.to_numpy()].astype(np.int64))
    return pa.table({"origin": origin, "views": views, "neighbours": neighbours, "co_views": co_views})


def bipartite_lists_from_views(
    views: pa.Table, views_of: np.ndarray, in_viewing_order: bool
) -> tuple[pa.Table, pa.Table]:
    """The bipartite walk's (origin, views, users) and (user_id, assets) lists, as seasons.bipartite_lists makes
    them in Spark, from the onward views (user_id, asset_idx; with `in_viewing_order`, viewed_at and tie, the
    view's hash) and each asset index's views. Lists are sorted as Spark sorts them (missing times first)."""
    by_asset = views.sort_by([("asset_idx", "ascending"), ("user_id", "ascending")])
    origin, users = _groups(by_asset.column("asset_idx"), by_asset.column("user_id"))
    views_column = pa.array(views_of[origin.to_numpy()].astype(np.int64))
    origin_lists = pa.table({"origin": origin, "views": views_column, "users": users})
    order = []
    if in_viewing_order:  # a view without a time comes first, as in Spark's ascending sort of structs
        at = pc.fill_null(views.column("viewed_at").cast(pa.int64()), np.iinfo(np.int64).min)
        views, order = views.append_column("at", at), [("at", "ascending"), ("tie", "ascending")]
    by_user = views.sort_by([("user_id", "ascending"), *order, ("asset_idx", "ascending")])
    user_id, assets = _groups(by_user.column("user_id"), by_user.column("asset_idx"))
    return origin_lists, pa.table({"user_id": user_id, "assets": assets})


def onward_views_with_ties(views: pa.Table) -> pa.Table:
    """The views (user_id, asset_idx, viewed_at) of users who watched at least two assets, each with its tie
    (seasons.view_tie: Spark's xxhash64 of user_id and asset_idx): what bipartite_lists_from_views takes, as
    seasons.onward_views gives it in Spark."""
    _, user, views_of_user = np.unique(views.column("user_id").to_numpy(), return_inverse=True, return_counts=True)
    onward = views.filter(pa.array(views_of_user[user] >= 2))
    tie = xxhash64(onward.column("user_id").to_numpy(), onward.column("asset_idx").to_numpy())
    return onward.append_column("tie", pa.array(tie))


def held_out_rows(views: pa.Table, users: int, seed: int) -> np.ndarray:
    """Which of the views (user_id, asset_idx, viewed_at) form the held-out slice, as seasons.held_out_views picks
    it in Spark: among the users with at least 3 views, the first `users` by Spark's xxhash64(user_id, seed) then
    user_id; of each, the latest view (a time before none, then the view's tie, then asset_idx, highest first)."""
    user_id = views.column("user_id").to_numpy()
    ids, user, views_of_user = np.unique(user_id, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(views_of_user >= 3)
    chosen = np.zeros(ids.size, dtype=bool)
    chosen[eligible[np.lexsort((ids[eligible], xxhash64(ids[eligible], seed)))[:users]]] = True
    rows = np.flatnonzero(chosen[user])
    asset = views.column("asset_idx").to_numpy()[rows]
    stamps = views.column("viewed_at").take(pa.array(rows))
    timed = pc.is_valid(stamps).to_numpy(zero_copy_only=False)
    at = pc.fill_null(stamps.cast(pa.int64()), 0).to_numpy()
    order = np.lexsort((asset, xxhash64(user_id[rows], asset), at, timed, user[rows]))
    grouped = user[rows][order]
    latest = np.append(grouped[1:] != grouped[:-1], True)  # the last of each user's run, in ascending order
    held_out = np.zeros(views.num_rows, dtype=bool)
    held_out[rows[order][latest]] = True
    return held_out


def _ranges(total: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, total)) for start in range(0, total, size)]
