"""Seasons of samples: the walk kernels of film2vec.seasons.walks run per partition, written to Delta.

Each season is a fresh training set of (draw, origin, target) rows as dense asset indices (see the assets
table); each sample's negatives are a function of its draw key, drawn by the trainer where it uses them,
so the table holds two asset indices a sample instead of 2 + negatives. Rows are a pure function of
(seed, season, origin), so rerunning a season rewrites identical rows whatever the partitioning, and
writing it replaces exactly that season's partition of the Delta table in one commit: a job that fails
leaves the previous rows of the season as they were.

Two walks:
- `coview`: one step over the pair table, P(b | a) ∝ co_views(a, b). One mapInArrow over per-origin
  neighbour lists.
- `bipartite`: origin a → a uniform user u who watched a (and another asset) → a uniform other asset of u,
  P(b | a) = Σ_u [1/deg(a)]·[1/(deg(u) − 1)], straight from the views without the pair table. The first
  step runs over per-asset user lists and emits (user, origin, samples): one row per (origin, user) drawn,
  with the numbers of the samples that drew it, so the shuffle moves at most a row per view, never a row
  per sample or per pair; those rows and the per-user asset lists are shuffled into the same user bucket
  (hash of user_id modulo sample_partitions) and the second step runs per bucket. A bucket holds
  1/sample_partitions of the views and of the season's samples in memory, so raise sample_partitions with
  the data.

Where the walk's input is small (--sampler auto, --driver-sampling-rows), its lists are collected once and
each season is drawn on the driver by the same functions (sampler.season_table) and written from there: the
same rows, without the jobs, shuffles and Python workers a Spark season costs.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from film2vec import tables
from film2vec.config import Config, ConfigError, SeasonsConfig, flag_of
from film2vec.seasons.sampler import (
    bipartite_first_step,
    bipartite_lists_from_views,
    bipartite_second_step,
    coview_lists_from_edges,
    coview_step,
    held_out_rows,
    onward_views_with_ties,
    sampling_plan,
    season_samples,
    season_table,
)
from film2vec.seasons.walks import Origins, stream_key
from film2vec.storage import writes_in_place

log = logging.getLogger(__name__)

SAMPLE_SCHEMA = "season int, draw bigint, origin int, target int"


def neighbour_lists(pairs: DataFrame, assets: DataFrame, partitions: int) -> DataFrame:
    """One row per origin index: its views, its neighbours' indices and co_views, in neighbour order."""
    indexed = indexed_edges(pairs, assets).select("origin", F.struct("neighbour", "co_views").alias("edge"))
    edges = F.array_sort(F.collect_list("edge"))
    return (
        indexed.groupBy("origin")
        .agg(edges.alias("edges"))
        .join(assets.select(F.col("asset_idx").alias("origin"), "views"), "origin")
        .select(
            "origin", "views", F.col("edges.neighbour").alias("neighbours"), F.col("edges.co_views").alias("co_views")
        )
        .repartition(partitions, "origin")
    )


def indexed_edges(pairs: DataFrame, assets: DataFrame) -> DataFrame:
    """The pairs as (origin, neighbour, co_views) in asset indices."""
    ids = assets.select("asset_idx", "asset_id")
    return (
        pairs.join(ids.withColumnRenamed("asset_id", "asset_a"), "asset_a")
        .withColumnRenamed("asset_idx", "origin")
        .join(ids.withColumnRenamed("asset_id", "asset_b"), "asset_b")
        .select("origin", F.col("asset_idx").alias("neighbour"), "co_views")
    )


def view_tie():
    """The order of a user's views at one time (or without one): a hash of the view, arbitrary but fixed."""
    return F.xxhash64("user_id", "asset_idx")


def bipartite_lists(
    views: DataFrame, assets: DataFrame, partitions: int, in_viewing_order: bool = False
) -> tuple[DataFrame, DataFrame]:
    """The bipartite walk's two sides, over users who watched at least two assets (the others lead nowhere).

    (origin, views, users): per asset, its users; (user_id, assets, bucket): per user, the asset indices,
    bucketed by a hash of user_id. Lists are sorted (a user's assets `in_viewing_order`: by viewed_at, ties by
    a hash of the view), so a draw's position means the same item everywhere.
    """
    links = onward_views(views.select("user_id", "asset_idx", *(["viewed_at"] if in_viewing_order else [])))
    origins = (
        links.groupBy(F.col("asset_idx").alias("origin"))
        .agg(F.array_sort(F.collect_list("user_id")).alias("users"))
        .join(assets.select(F.col("asset_idx").alias("origin"), "views"), "origin")
        .select("origin", "views", "users")
        .repartition(partitions, "origin")
    )
    if in_viewing_order:  # ties (equal or missing times) in an arbitrary but fixed order: a hash of the view
        history = F.array_sort(F.collect_list(F.struct("viewed_at", view_tie().alias("tie"), "asset_idx")))["asset_idx"]
    else:
        history = F.array_sort(F.collect_list("asset_idx"))
    users = links.groupBy("user_id").agg(history.alias("assets"))
    return origins, users.withColumn("bucket", user_bucket(partitions))


def onward_views(views: DataFrame) -> DataFrame:
    """The views of users who watched at least two assets: the only ones the bipartite walk steps through."""
    onward = views.groupBy("user_id").agg(F.count("*").alias("degree")).where("degree >= 2").select("user_id")
    return views.join(onward, "user_id", "left_semi")


def user_bucket(partitions: int):
    """The bucket of a user: the same on both sides of the bipartite walk's second step."""
    return F.pmod(F.hash("user_id"), F.lit(partitions))


class CoviewWalk:
    """origin → a co-viewed asset, P(b | a) ∝ co_views(a, b): one step over DIR/pairs."""

    name = "coview"
    table = "pairs"  # what it walks over, beside the assets
    held_out_refusal = (
        "flag --seasons 0 (as many seasons as the vectors improve) holds a slice of views out of the walk, but "
        "the co-view walk reads pair counts of every view: give --seasons N with --walk coview"
    )

    def settings(self, config: SeasonsConfig) -> dict:
        """The settings of this walk alone that decide a season's rows."""
        return {}

    def window(self, config: SeasonsConfig) -> int:
        return 0

    def input_rows(self, catalogue_views) -> int | None:
        """Its input's rows when the catalogue's views tell them (None: counted when needed)."""
        return None

    def origins(self, spark: SparkSession, config: Config) -> DataFrame:
        """asset_id of the assets it starts from: those with a co-view pair."""
        return tables.of(config, "pairs").read(spark).select(F.col("asset_a").alias("asset_id")).distinct()

    def driver_lists(self, pairs: DataFrame, assets: DataFrame, catalogue_views, window: int) -> tuple:
        """Its lists collected to the driver: (origin lists, None)."""
        return coview_lists_from_edges(indexed_edges(pairs, assets).toArrow(), catalogue_views), None

    def spark_lists(self, pairs: DataFrame, assets: DataFrame, partitions: int, window: int) -> tuple:
        """Its lists in Spark, cached: (origin lists, None)."""
        return neighbour_lists(pairs, assets, partitions).persist(), None

    def samples(self, sampler: SeasonSampler, key: int, season: int) -> DataFrame:
        """A season's samples drawn by the executors from the cached lists."""
        step = coview_step(key, season, sampler.origins, sampler.negatives)
        return sampler.origin_lists.mapInArrow(step, SAMPLE_SCHEMA)


class BipartiteWalk:
    """origin → a user who watched it → another asset of theirs (within --context-window of the origin):
    straight from DIR/views, without the pair table."""

    name = "bipartite"
    table = "views"
    held_out_refusal = None

    def settings(self, config: SeasonsConfig) -> dict:
        return {"context_window": config.context_window}

    def window(self, config: SeasonsConfig) -> int:
        return config.context_window

    def input_rows(self, catalogue_views) -> int | None:
        return int(catalogue_views.sum())  # a view per row

    def origins(self, spark: SparkSession, config: Config) -> DataFrame:
        """asset_id of the assets it starts from: those watched by a user who watched another asset."""
        views = tables.of(config, "views").read(spark).select("user_id", "asset_id")
        return onward_views(views).select("asset_id").distinct()

    def driver_lists(self, views: DataFrame | pa.Table, assets: DataFrame, catalogue_views, window: int) -> tuple:
        if isinstance(views, pa.Table):  # read by delta-rs (views_on_driver): the same lists, no Spark job
            onward = onward_views_with_ties(views)
        else:
            onward = onward_views(views.select("user_id", "asset_idx", "viewed_at").withColumn("tie", view_tie()))
            onward = onward.toArrow()
        return bipartite_lists_from_views(onward, catalogue_views, window > 0)

    def spark_lists(self, views: DataFrame, assets: DataFrame, partitions: int, window: int) -> tuple:
        origin_lists, user_lists = bipartite_lists(views, assets, partitions, window > 0)
        return origin_lists.persist(), user_lists.persist()

    def samples(self, sampler: SeasonSampler, key: int, season: int) -> DataFrame:
        user_type = sampler.user_lists.schema["user_id"].dataType.simpleString()
        choice_schema = f"user_id {user_type}, origin int, samples array<int>"
        choices = sampler.origin_lists.mapInArrow(
            bipartite_first_step(key, sampler.origins, sampler.negatives), choice_schema
        ).withColumn("bucket", user_bucket(sampler.partitions))
        return (
            choices.groupBy("bucket")
            .cogroup(sampler.user_lists.groupBy("bucket"))
            .applyInArrow(bipartite_second_step(key, season, sampler.negatives, sampler.window), SAMPLE_SCHEMA)
        )


Walk = CoviewWalk | BipartiteWalk
WALKS: dict[str, Walk] = {walk.name: walk for walk in (CoviewWalk(), BipartiteWalk())}


def walk_of(config: SeasonsConfig) -> Walk:
    """The configured walk (--walk)."""
    return WALKS[config.walk]


@dataclass(frozen=True)
class SeasonSampler:
    """A walk's lists (cached in Spark, or held by the driver) with its origins: makes any season's samples.

    With `driver_lists` (the origin and user lists as Arrow tables) a season is drawn in this process by the
    same functions the executors run (sampler.season_table) and, to a local table, written by delta-rs: the
    same rows, without a Spark job per season. `drawn_from` is the provenance every season it writes records
    (see `provenance`): the sampler's settings, the seed and the versions of the tables its lists were read from.
    """

    spark: SparkSession
    walk: Walk
    seed: int
    origins: Origins
    negatives: int  # the negatives' slots in each sample's stream (the trainer draws them)
    window: int  # the bipartite walk's context window (0: a user's whole history)
    origin_lists: DataFrame | None = None
    user_lists: DataFrame | None = None
    partitions: int = 1
    drawn_from: dict | None = None
    driver_lists: tuple[pa.Table, pa.Table | None] | None = None

    def samples(self, season: int) -> DataFrame:
        """Season `season`'s samples in draw order within each partition (lazy; nothing runs until written).

        Files of any partitioning then hold sorted runs of one order, which the trainer merges (see
        film2vec.train.stream.read_season): the same rows in the same order on any cluster.
        """
        if self.driver_lists is not None:
            return self.spark.createDataFrame(self.drawn_on_driver(season))
        samples = self.walk.samples(self, stream_key(self.seed, season), season)
        # season first: the Delta writer, which orders rows by the partition column, keeps this order
        return samples.sortWithinPartitions("season", "draw")

    def drawn_on_driver(self, season: int) -> pa.Table:
        """Season `season` drawn in this process from the driver's lists, in draw order."""
        key = stream_key(self.seed, season)
        return season_table(key, season, self.origins, self.negatives, self.window, *self.driver_lists)

    def write(self, season: int, path: str) -> None:
        """Sample season `season` and replace it in the Delta table at `path`, recording how it was drawn."""
        record = {**(self.drawn_from or {}), "season": season}
        if self.driver_lists is not None and writes_in_place(path):  # delta-rs commits atomically only there
            write_season(self.drawn_on_driver(season), path, season, record)
        else:
            write_season(self.samples(season), path, season, record)

    def release(self) -> None:
        """Drop the cached lists."""
        for lists in (self.origin_lists, self.user_lists):
            if lists is not None:
                lists.unpersist()


def season_sampler(
    config: SeasonsConfig,
    seed: int,
    assets: DataFrame,
    pairs: DataFrame | None = None,
    views: DataFrame | pa.Table | None = None,
    drawn_from: dict | None = None,
    catalogue: pa.Table | None = None,
) -> SeasonSampler:
    """Prepare the configured walk (pairs for `coview`, views for `bipartite`: a frame, or held by the driver) and
    its origins, in Spark or on the driver (--sampler); `drawn_from` is the provenance its seasons record, and
    `catalogue` the assets' (asset_idx, views) when the driver holds them.

    Raises InputError when the catalogue is too small or no asset has anywhere to walk to.
    """
    walk = walk_of(config)
    walk_input = {"pairs": pairs, "views": views}[walk.table]
    if walk_input is None:
        raise ValueError(f"the {walk.name} walk samples from {walk.table}; pass {walk.table}=")
    if catalogue is None:
        catalogue = assets.select("asset_idx", "views").toArrow()
    # asset_idx runs 0..n-1 (ingest numbers the assets densely), so this is each index's views
    catalogue_views = catalogue.sort_by("asset_idx").column("views").to_numpy()
    window = walk.window(config)
    sampler = {"spark": assets.sparkSession, "walk": walk, "seed": seed, "negatives": config.negatives}
    sampler.update(window=window, partitions=config.sample_partitions, drawn_from=drawn_from)
    rows = walk.input_rows(catalogue_views)
    if draws_on_driver(config, walk_input, catalogue_views, rows):
        lists = walk.driver_lists(walk_input, assets, catalogue_views, window)
        origins = sampling_plan(config, catalogue_views, lists[0].column("views").to_numpy())
        return SeasonSampler(origins=origins, driver_lists=lists, **sampler)
    if isinstance(walk_input, pa.Table):  # held by the driver, but its seasons are drawn in Spark
        walk_input = assets.sparkSession.createDataFrame(walk_input)
    origin_lists, user_lists = walk.spark_lists(walk_input, assets, config.sample_partitions, window)
    origin_views = origin_lists.select("views").toArrow().column("views").to_numpy()
    origins = sampling_plan(config, catalogue_views, origin_views)
    return SeasonSampler(origins=origins, origin_lists=origin_lists, user_lists=user_lists, **sampler)


def draws_on_driver(
    config: SeasonsConfig, walk_input: DataFrame, catalogue_views: np.ndarray, rows: int | None = None
) -> bool:
    """--sampler: spark, driver, or (auto) the driver when the walk's input rows (`rows` when the caller knows
    them, else counted up to the limit) and a season's samples (at most what `season_samples` gives for the
    whole catalogue, by its `catalogue_views`: the walk's origins are among its assets) both fit
    --driver-sampling-rows."""
    if config.sampler != "auto":
        return config.sampler == "driver"
    limit = config.driver_sampling_rows
    if season_samples(config, catalogue_views) > limit:
        return False
    return (rows if rows is not None else walk_input.limit(limit + 1).count()) <= limit


def write_season(samples: DataFrame | pa.Table, path: str, season: int, provenance: dict | None = None) -> None:
    """Replace season `season` of the Delta table at `path` atomically (other seasons untouched), with its
    provenance as the commit's record: from Spark, or by delta-rs for a season drawn on the driver, at a
    fraction of the cost of handing its rows to the JVM.

    Raises ConcurrentWriteError when another job commits to the table between this write's read and commit.
    """
    record = None if provenance is None else {SEASON_RECORD: provenance}
    tables.replace_partition(samples, path, "season", season, record=record)


SEASON_RECORD = "film2vec_season"  # the key of a season's provenance in its Delta commit's record


def sampler_settings(config: SeasonsConfig, seed: int) -> dict:
    """The settings that decide a season's rows, and only those (not how many seasons, nor the partitions)."""
    settings = {
        "seed": seed,
        "walk": config.walk,
        "samples_per_view": config.samples_per_view,
        "season_samples_per_asset": config.season_samples_per_asset,
        "origin_distribution": config.origin_distribution,
        "negatives": config.negatives,
    }
    if config.origin_distribution == "views":
        settings["origin_exponent"] = config.origin_exponent
    settings.update(walk_of(config).settings(config))
    if config.seasons == 0:  # the walk leaves the held-out slice out
        settings["validation_users"] = config.validation_users
    return settings


def provenance(config: SeasonsConfig, seed: int, input_versions: dict[str, int]) -> dict:
    """How a season is drawn: the sampler's settings and the Delta versions of the tables it reads."""
    return {"settings": sampler_settings(config, seed), "inputs": dict(sorted(input_versions.items()))}


def setting_differences(drawn: dict, expected: dict) -> list[str]:
    """What differs between the settings a season was drawn with and the expected ones, one phrase each."""
    return [
        f"{name} = {drawn.get(name)!r} there, {expected.get(name)!r} here"
        for name in sorted(set(drawn) | set(expected))
        if drawn.get(name) != expected.get(name)
    ]


class SeasonFeed:
    """Season numbers for the trainer, each handed over once its Delta commit exists.

    A background thread writes the seasons in order (Spark takes jobs from several threads), season k + 1 while
    the trainer trains on season k and never further ahead, so a run that stops early draws at most one season
    it does not train. Iterating blocks only when sampling is behind, and `waited` records those seconds per
    season. Use it as a context manager: leaving stops the thread after the season it is writing.
    """

    def __init__(
        self,
        write: Callable[[int], None],
        seasons: Iterable[int],
        on_wait: Callable[[int, float], None] | None = None,
    ) -> None:
        self.seasons = list(seasons)
        self.written: list[int] = []
        self.waited: dict[int, float] = {}
        self.sampling_seconds = 0.0
        self._write, self._on_wait = write, on_wait
        self._written: queue.Queue = queue.Queue()
        self._wanted = threading.Semaphore(2)  # the season trained now and the next one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="film2vec-seasons", daemon=True)

    def _sample(self) -> None:
        try:
            for season in self.seasons:
                self._wanted.acquire()
                if self._stop.is_set():
                    return
                started = time.perf_counter()
                self._write(season)
                self.sampling_seconds += time.perf_counter() - started
                self.written.append(season)
                self._written.put(season)
        except BaseException as error:  # handed to the trainer, which re-raises it
            self._written.put(error)

    def __enter__(self) -> SeasonFeed:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop drawing after the season being written, if any (again: nothing more happens)."""
        if not self._stop.is_set():
            self._stop.set()
            self._wanted.release()  # a thread waiting for the trainer wakes up and stops
        self._thread.join()

    def __iter__(self) -> Iterator[int]:
        for position, _ in enumerate(self.seasons):
            if position > 0:
                self._wanted.release()  # the previous season is trained: the one after this may be drawn
            started = time.perf_counter()
            season = self._written.get()
            if isinstance(season, BaseException):
                raise season
            self.waited[season] = time.perf_counter() - started
            if self._on_wait:
                self._on_wait(season, self.waited[season])
            yield season


@contextlib.contextmanager
def season_feed(
    spark: SparkSession,
    config: Config,
    seasons: Iterable[int],
    on_wait: Callable[[int, float], None] | None = None,
    *,
    keep_matching: bool = False,
) -> Iterator[SeasonFeed]:
    """A SeasonFeed drawing the configured walk into DIR/seasons. With `keep_matching`, a season the table
    already holds, drawn by this configuration from the current inputs, is kept as it is (`film2vec train`
    under --seasons 0 after `film2vec sample`); the walk's lists are prepared only when a season is drawn."""
    samplers: list[SeasonSampler] = []

    def write(season: int) -> None:
        if keep_matching and season_mismatch(spark, config, [season])[0] is None:
            return
        if not samplers:
            samplers.append(season_sampler_for(spark, config))
        samplers[0].write(season, config.out("seasons"))

    try:
        with SeasonFeed(write, seasons, on_wait) as feed:
            yield feed
    finally:
        for sampler in samplers:
            sampler.release()


def walk_inputs(config: Config) -> tuple[str, str]:
    """The tables the configured walk draws from: the assets and DIR/pairs (co-view) or DIR/views (bipartite)."""
    return ("assets", walk_of(config.seasons).table)


def walk_origins(spark: SparkSession, config: Config) -> DataFrame:
    """asset_id of the assets the configured walk can start from: those with a co-view pair (co-view walk), or
    watched by a user who watched another asset (bipartite)."""
    return walk_of(config.seasons).origins(spark, config)


def stops_on_held_out(config: Config) -> bool:
    """Whether the run chooses its number of seasons (--seasons 0) on a slice of views held out of the walk;
    ConfigError when its walk cannot hold views out (the other settings it needs are Config.check's)."""
    settings = config.seasons
    if settings.seasons:
        return False
    if walk_of(settings).held_out_refusal:
        raise ConfigError(walk_of(settings).held_out_refusal)
    return True


def held_out_views(views: DataFrame, users: int, seed: int) -> DataFrame:
    """(user_id, asset_idx) of the views held out of the seasons to score them on: the last view, in viewing
    order (as the walk orders a user's views: time, then the view's hash), of `users` users drawn by a seeded
    hash among those with at least 3 views (two stay, so the user still walks and has a taste)."""
    eligible = views.groupBy("user_id").agg(F.count("*").alias("views")).where("views >= 3")
    chosen = eligible.orderBy(F.xxhash64("user_id", F.lit(seed)), "user_id").limit(users).select("user_id")
    latest_first = Window.partitionBy("user_id").orderBy(
        F.col("viewed_at").desc_nulls_last(), F.col("tie").desc(), F.col("asset_idx").desc()
    )
    return (
        views.join(chosen, "user_id", "left_semi")
        .withColumn("tie", view_tie())
        .withColumn("position", F.row_number().over(latest_first))
        .where("position = 1")
        .select("user_id", "asset_idx")
    )


def views_on_driver(config: Config) -> pa.Table | None:
    """DIR/views (user_id, asset_idx, viewed_at) read by delta-rs for a walk the driver draws, where the driver
    also picks the held-out slice and orders ties as Spark does (film2vec/seasons/spark_hash.py); None where Spark
    reads them: --sampler spark, more views than --driver-sampling-rows (auto), a table too large or not on this
    machine, user ids that are not integers."""
    settings = config.seasons
    if settings.sampler == "spark":
        return None
    views = tables.of(config, "views").driver_rows(["user_id", "asset_idx", "viewed_at"])
    if views is None or not pa.types.is_integer(views.schema.field("user_id").type):
        return None
    return None if settings.sampler == "auto" and views.num_rows > settings.driver_sampling_rows else views


def walked_views(views: DataFrame, config: Config, hold_out: bool = True) -> DataFrame | pa.Table:
    """The views the bipartite walk draws from: all of them, less the held-out slice under --seasons 0 unless not
    `hold_out`; held by the driver where it reads them (views_on_driver), else a Spark frame."""
    held = views_on_driver(config)
    if not (hold_out and stops_on_held_out(config)):
        return views if held is None else held
    users, seed = config.seasons.validation_users, config.seed
    if held is not None:
        return held.filter(pa.array(~held_out_rows(held, users, seed)))
    return views.join(held_out_views(views, users, seed), ["user_id", "asset_idx"], "left_anti")


def season_sampler_for(spark: SparkSession, config: Config, *, hold_out: bool = True) -> SeasonSampler:
    """The configured walk over its input tables, read at their current versions, which its seasons record.
    Without `hold_out`, the walk covers every view, the held-out slice's too (recorded as validation_users 0):
    the season that adds the slice back once the run has stopped (see film2vec.train.trainer.train)."""
    versions = {table: tables.of(config, table).version(spark) for table in walk_inputs(config)}
    frames = {table: tables.of(config, table).read(spark, version=version) for table, version in versions.items()}
    drawn_from = provenance(config.seasons, config.seed, versions)
    if "views" in frames:
        frames["views"] = walked_views(frames["views"], config, hold_out)
    if not (hold_out and "views" in frames) and "validation_users" in drawn_from["settings"]:
        drawn_from["settings"]["validation_users"] = 0
    catalogue = tables.of(config, "assets").driver_rows(["asset_idx", "views"])
    assets = frames.pop("assets")
    return season_sampler(config.seasons, config.seed, assets, **frames, drawn_from=drawn_from, catalogue=catalogue)


def season_numbers(config: Config) -> range:
    """The seasons a run may draw and train: --seasons of them (a refresh sets its --warm-seasons there), or up
    to --max-seasons under --seasons 0, where the held-out slice decides when to stop."""
    return range(config.seasons.seasons or config.seasons.max_seasons)


def seasons_to_sample(config: Config) -> range:
    """The seasons `film2vec sample` draws: --seasons of them, or the --min-seasons every run trains under
    --seasons 0 (the training stage draws any further ones as it needs them)."""
    return range(config.seasons.seasons or config.seasons.min_seasons)


def seasons_written(config: Config, seasons: list[int]) -> dict:
    """Where the seasons are and how many samples they hold (counted from the files' footers)."""
    path = config.out("seasons")
    samples = sum(tables.rows_without_spark(path, f"season {s}", ("season", str(s))) for s in seasons)
    return {"seasons": path, "season_numbers": seasons, "samples": samples}


def _season_text(numbers: list[int]) -> str:
    """Season numbers for a message: "season 3", "seasons 1–9", "seasons 0, 2, 5"."""
    if len(numbers) == 1:
        return f"season {numbers[0]}"
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"seasons {numbers[0]}–{numbers[-1]}"
    return "seasons " + ", ".join(map(str, numbers))


def drop_other_seasons(spark: SparkSession, config: Config, seasons: list[int]) -> list[int]:
    """Delete the seasons of DIR/seasons other than `seasons`, so that no later stage reads rows drawn by
    another run (a `sample` of fewer seasons, another walk); returns the numbers deleted."""
    seasons_table = tables.of(config, "seasons")
    if not seasons_table.exists(spark):
        return []
    surplus = [season for season in seasons_table.partition_numbers(spark, "season") if season not in seasons]
    if surplus:
        seasons_table.delete_rows(spark, f"season IN ({', '.join(map(str, surplus))})")
        log.info("removed %s of %s, drawn by an earlier run", _season_text(surplus), seasons_table.where)
    return surplus


def sample(spark: SparkSession, config: Config, seasons: range | None = None) -> dict:
    """Write the configured seasons of samples to DIR/seasons, each replacing only itself, then delete any
    other season the table holds (last: a walk whose inputs are missing stops before anything is deleted).

    Example::

        from film2vec import config, spark
        from film2vec.seasons.stage import sample
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        sample(spark.get_spark(settings.spark), settings)
    """
    seasons = list(seasons if seasons is not None else seasons_to_sample(config))
    sampler = season_sampler_for(spark, config)
    try:
        for season in seasons:
            sampler.write(season, config.out("seasons"))
            log.info("season %d sampled", season)
    finally:
        sampler.release()
    removed = drop_other_seasons(spark, config, seasons)
    return {**seasons_written(config, seasons), "removed_seasons": removed}


def _redraw_command(config: Config, seasons: list[int]) -> str:
    """The `film2vec sample` command that draws `seasons` with this configuration."""
    flags = [f"--out {shlex.quote(config.data.out)}", f"--seasons {max(seasons) + 1}"]
    if config.data.schema:
        flags.append(f"--schema {shlex.quote(config.data.schema)}")
    defaults = sampler_settings(SeasonsConfig(), 0)
    for name, value in sampler_settings(config.seasons, config.seed).items():
        if defaults.get(name) != value:
            flags.append(f"{flag_of(name)} {value}")
    return "film2vec sample " + " ".join(flags)


def season_mismatch(spark: SparkSession, config: Config, seasons: list[int]) -> tuple[str | None, list[int]]:
    """(None, []) when every season is there and was drawn with this configuration from the current rows of
    its inputs (their Delta versions, compactions aside); otherwise what differs or is missing, per group of
    seasons, and how to redraw them, with the missing seasons."""
    seasons_table = tables.of(config, "seasons")
    path = seasons_table.where
    present = set(seasons_table.partition_numbers(spark, "season")) if seasons_table.exists(spark) else set()
    missing = [season for season in seasons if season not in present]
    records: dict[int, dict] = {}
    for _, record in seasons_table.records(spark, SEASON_RECORD) if present else []:
        records.setdefault(record["season"], record)
    expected = sampler_settings(config.seasons, config.seed)
    changed: dict[tuple[str, int], list[int]] = {}
    problems: dict[str, list[int]] = {}
    for season in seasons:
        if season in missing:
            continue
        record = records.get(season)
        if record is None:
            problems.setdefault("there is no record of how they were drawn", []).append(season)
            continue
        found = setting_differences(record["settings"], expected)
        for table, version in sorted(record["inputs"].items()):
            if (table, version) not in changed:
                changed[table, version] = tables.of(config, table).changed_since(spark, version)
            if changed[table, version]:
                found.append(f"{table} changed since (version {version} there, {changed[table, version][-1]} now)")
        if found:
            problems.setdefault("; ".join(found), []).append(season)
    lines = [f"{_season_text(missing)} missing from {path}"] if missing else []
    lines += [f"{_season_text(numbers)} of {path}: {what}" for what, numbers in problems.items()]
    if not lines:
        return None, []
    return (
        "the seasons to train on were not drawn with this configuration from the current inputs:\n  "
        + "\n  ".join(lines)
        + f"\nRedraw them with `{_redraw_command(config, seasons)}`, or train on them as they are with "
        "--allow-season-mismatch true (the run records it)",
        missing,
    )
