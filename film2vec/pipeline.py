"""The stages end to end, each reading and writing Delta tables under the output folder.

    DIR/synthetic/{events,assets}   the generated catalogue (when no events are given)
    DIR/views      clean views: user_id, asset_id, viewed_at, asset_idx (one row per user and asset)
    DIR/assets     asset_idx, asset_id, views, title, genres (asset_idx never changes in a refresh)
    DIR/unviewed   asset_id, title, genres: assets in the metadata with no view yet (cold start)
    DIR/rejects    rows set aside: reason, line, source
    DIR/pairs      asset_a, asset_b, co_views
    DIR/seasons    season, origin, target, negatives (asset indices), partitioned by season
    DIR/embeddings asset_id, vector, source ('views': trained; 'metadata': provisional, from labels)
Each function returns a summary dict of what it wrote; the CLI prints it.
"""

from __future__ import annotations

import copy
import json
import logging
import shlex
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from film2vec import tables, tracking
from film2vec.baselines import fit_als
from film2vec.config import Config, ConfigError, SeasonsConfig
from film2vec.conflicts import committing
from film2vec.evaluate import Split, genre_precision, next_watch_of_user_vectors, split_views
from film2vec.evaluate import evaluate as evaluate_vectors
from film2vec.events import InputError, columns_of, ingest
from film2vec.neighbours import neighbours_table
from film2vec.pairs import (
    PairEstimate,
    cap_views,
    check_budget,
    estimate_pairs,
    gram_buckets,
    pair_increment,
    pairs_by_gram,
    pairs_by_join,
    sparsify,
)
from film2vec.plots import plot_loss
from film2vec.seasons import (
    SEASON_RECORD,
    SeasonFeed,
    SeasonSampler,
    provenance,
    sampler_settings,
    season_sampler,
    setting_differences,
)
from film2vec.synthetic import plan_catalogue
from film2vec.train.checkpoint import clear as clear_checkpoint
from film2vec.train.trainer import StartingRows, train
from film2vec.warm import label_mean_vectors, median_cosine

log = logging.getLogger(__name__)
EMBEDDINGS_RECORD = "film2vec_embeddings"  # the key of the embeddings' (and neighbours') provenance in their commits
SEASON_MISMATCH_TAG = "film2vec.season_mismatch"  # on a run trained with --allow-season-mismatch: what differed
TRAINED_FROM = ("assets", "pairs", "seasons")  # the Delta tables a training run records as its inputs
FIGURES_TAG = "film2vec.figures_from"  # run tag: "held-out split" (film2vec evaluate) or "all views"
# Key of the pair table's commit metadata: the version of DIR/views its counts are of, and how they were counted
PAIRS_RECORD = "film2vec_pairs"


def generate(spark: SparkSession, config: Config) -> dict:
    """Write the synthetic catalogue's events and metadata as Delta tables under DIR/synthetic.

    The events are drawn by Spark, a chunk of users per task (plan_catalogue), so no process ever holds more
    than a chunk of them and the catalogue can be as large as the cluster's disks.
    """
    plan = plan_catalogue(config.synthetic, config.seed)
    events, assets = config.out("synthetic/events"), config.out("synthetic/assets")

    def draw(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for chunk in batch.column("id").to_pylist():
                yield from plan.events_chunk(chunk).to_batches()

    partitions = min(plan.chunks, int(spark.conf.get("spark.sql.shuffle.partitions")))
    chunks = spark.range(0, plan.chunks, 1, max(partitions, 1))
    tables.write(
        config, chunks.mapInArrow(draw, "user_id long, asset_id long, viewed_at timestamp"), "synthetic/events"
    )
    tables.write(config, spark.createDataFrame(plan.assets_table()), "synthetic/assets")
    return {
        "events": events,
        "metadata": assets,
        "views": tables.read(spark, config, "synthetic/events").count(),
        "users": int(config.synthetic.users),
        "assets": int(config.synthetic.catalogue_size),
        "genres": int(config.synthetic.genres),
    }


def events_source(spark: SparkSession, config: Config) -> tuple[str, str | None]:
    """The events (and metadata) to use: the configured ones, or the synthetic catalogue made on demand."""
    if config.data.events:
        return config.data.events, config.data.metadata
    events, metadata = config.out("synthetic/events"), config.out("synthetic/assets")
    if not tables.exists(spark, config, "synthetic/events"):
        log.info("no --events: drawing the synthetic catalogue into %s", config.out("synthetic"))
        generate(spark, config)
    return events, metadata


def prepare_views(spark: SparkSession, config: Config) -> dict:
    """Validate the events into DIR/views, DIR/assets and DIR/rejects; stop when no view is valid."""
    events, metadata = events_source(spark, config)
    found = ingest(spark, events, metadata, config.data.id_type, columns_of(config.data))
    tables.write(config, found.rejects, "rejects")
    summary = dict(found.summary)
    if summary["valid"] == 0:
        raise InputError(
            f"events at {events}: none of the {summary['rows']} rows is a valid view "
            f"(rejected by reason: {summary['rejected_by_reason']}); see {tables.where(config, 'rejects')}"
        )
    tables.write(config, found.assets, "assets")
    assets = tables.read(spark, config, "assets")
    tables.write(config, found.views.join(assets.select("asset_id", "asset_idx"), "asset_id"), "views")
    views = tables.read(spark, config, "views")
    _write_unviewed(spark, config, found.metadata)
    counts = views.agg(F.count("*").alias("views"), F.countDistinct("user_id").alias("users")).first()
    summary.update(
        views=counts["views"],
        users=counts["users"],
        assets=assets.count(),
        duplicates_merged=summary["valid"] - counts["views"],
    )
    return summary


def count_pairs(spark: SparkSession, config: Config) -> dict:
    """Ingest the events, estimate the cost (stopping when over budget), then write the co-view table DIR/pairs.

    With --new-events or --since, the new views are merged into the existing tables instead (count_new_pairs).
    """
    if config.data.new_events or config.data.since:
        return count_new_pairs(spark, config)
    summary = {"ingest": prepare_views(spark, config)}
    settings = config.pairs
    views = tables.read(spark, config, "views")
    if settings.max_user_views:
        views = cap_views(views, settings.max_user_views, config.seed)
    estimate = estimate_pairs(views)
    summary["estimate"] = estimate.summary()
    log.info(
        "pairs: about %s raw pairs from %s users; the table has at most %s rows (%.2f GB uncompressed)",
        f"{estimate.raw_pairs:,}",
        f"{estimate.users:,}",
        f"{estimate.max_rows:,}",
        estimate.max_bytes / 1e9,
    )
    check_budget(estimate, settings.pair_budget, views, tables.where(config, "views"))
    pairs = _pair_counter(spark, config, estimate)(views)
    sparse = settings.max_neighbours > 0 or settings.min_co_views > 0
    if sparse:
        pairs = pairs.persist()
        full = pairs.agg(F.count("*").alias("rows"), F.sum("co_views").alias("weight")).first()
        pairs_kept = sparsify(pairs, settings.max_neighbours, settings.min_co_views)
    record = _pairs_record(spark, config, tables.version(spark, config, "views"))
    tables.write(config, pairs_kept if sparse else pairs, "pairs", userMetadata=record)
    if sparse:
        pairs.unpersist()
    written = tables.read(spark, config, "pairs")
    stats = written.agg(
        F.count("*").alias("pairs"),
        F.countDistinct("asset_a").alias("assets_with_neighbours"),
        F.sum("co_views").alias("weight"),
    ).first()
    if stats["pairs"] == 0:
        raise InputError(
            f"events at {summary['ingest']['source']}: no pair of assets is left (two assets watched by the same "
            "user, after --min-co-views); check that user ids are real (not one user per view)"
        )
    summary.update(
        pairs=tables.where(config, "pairs"),
        pair_rows=stats["pairs"],
        assets_with_neighbours=stats["assets_with_neighbours"],
    )
    if sparse:
        summary.update(
            pair_rows_before_sparsifying=full["rows"],
            share_of_edges_kept=round(stats["pairs"] / full["rows"], 4),
            share_of_weight_kept=round(float(stats["weight"]) / float(full["weight"]), 4),
        )
    return summary


def _pair_counter(
    spark: SparkSession, config: Config, estimate: PairEstimate, increment: bool = False
) -> Callable[[DataFrame], DataFrame]:
    """The configured counting method, as a function from views to the co-view table of those views (with
    `increment`, from views flagged `new` to the pairs those add)."""
    settings = config.pairs
    weighted = settings.user_weighting == "inverse"
    assets = tables.read(spark, config, "assets")
    if settings.pair_method == "join":
        return lambda views: pairs_by_join(views, assets, weighted, increment)
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    buckets = gram_buckets(estimate, partitions, settings.gram_block_pairs)
    return lambda views: pairs_by_gram(views, assets, buckets, weighted, settings.gram_block_pairs, increment)


def _pairs_record(spark: SparkSession, config: Config, views_version: int) -> str:
    """The commit metadata of a pair table write: which views (and assets) it counts and the settings that
    shaped it."""
    settings = config.pairs
    return json.dumps(
        {
            PAIRS_RECORD: {
                "views_version": views_version,
                "assets_version": tables.version(spark, config, "assets"),
                "user_weighting": settings.user_weighting,
                "max_user_views": settings.max_user_views,
                "max_neighbours": settings.max_neighbours,
                "min_co_views": settings.min_co_views,
            }
        }
    )


def _pairs_counted(spark: SparkSession, config: Config) -> dict:
    """The record of the latest pair table write, checked against what an incremental count can update."""
    records = tables.commit_records(spark, config, "pairs", PAIRS_RECORD)
    if not records:
        raise InputError(
            f"{tables.where(config, 'pairs')}: no record of the views it counts; "
            "run `film2vec pairs` once without --new-events/--since"
        )
    record = records[0][1]
    settings, pairs = config.pairs, tables.where(config, "pairs")
    for name, now in (("max_user_views", settings.max_user_views), ("max_neighbours", settings.max_neighbours)):
        if record[name] or now:
            raise ConfigError(
                f"flag --{name.replace('_', '-')}: new views can only be merged into exact counts (a capped history or "
                f"a dropped pair cannot be updated); {pairs} was counted with {name} = {record[name]}, "
                f"this run asks for {now}. Recount with `film2vec pairs`, or refresh with 0"
            )
    if record["min_co_views"] or settings.min_co_views:
        raise ConfigError(
            f"flag --min-co-views: new views can only be merged into unsparsified counts; {pairs} was "
            f"counted with {record['min_co_views']}, this run asks for {settings.min_co_views}"
        )
    if record["user_weighting"] != settings.user_weighting:
        raise ConfigError(
            f"flag --user-weighting: {pairs} was counted with {record['user_weighting']!r}, this run "
            f"asks for {settings.user_weighting!r}; give the same, or recount with `film2vec pairs`"
        )
    return record


def _moment(text: str) -> datetime:
    """--since as a UTC time: Unix seconds, or ISO text (read as UTC when it names no zone)."""
    try:
        return datetime.fromtimestamp(float(text), timezone.utc)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"flag --since: {text!r} is not a time; give ISO text (2024-05-01 or 2024-05-01T06:00:00) or Unix seconds"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _write_unviewed(spark: SparkSession, config: Config, metadata: DataFrame | None) -> None:
    """DIR/unviewed: the metadata's assets that no view in DIR/views names (empty without metadata)."""
    views = tables.read(spark, config, "views")
    if metadata is None:
        schema = T.StructType(
            [
                views.schema["asset_id"],
                T.StructField("title", T.StringType()),
                T.StructField("genres", T.ArrayType(T.StringType())),
            ]
        )
        metadata = spark.createDataFrame([], schema)
    viewed = views.select("asset_id").distinct()
    unviewed = metadata.select("asset_id", "title", "genres").dropDuplicates(["asset_id"])
    tables.write(config, unviewed.join(viewed, "asset_id", "left_anti"), "unviewed")


def _new_batch(spark: SparkSession, config: Config) -> tuple[DataFrame, DataFrame | None, dict]:
    """The batch's valid views (from --new-events, else --events; at or after --since when given), its
    usable metadata, and its ingest summary."""
    if config.data.new_events:
        source, metadata = config.data.new_events, config.data.metadata
    else:
        source, metadata = events_source(spark, config)
    found = ingest(spark, source, metadata, config.data.id_type, columns_of(config.data))
    views = found.views
    if config.data.since:
        views = views.where(F.col("viewed_at") >= F.lit(_moment(config.data.since)))
    return views, found.metadata, found.summary


def _append_new_views(spark: SparkSession, config: Config, batch: DataFrame) -> None:
    """Append the batch's (user, asset) views that DIR/views lacks, in one commit. Known assets keep their
    asset_idx; new ones get the next indices in asset id order."""
    path = tables.where(config, "views")
    views = tables.read(spark, config, "views")
    for column in ("user_id", "asset_id"):
        if batch.schema[column].dataType != views.schema[column].dataType:
            raise InputError(
                f"new events: {column} is {batch.schema[column].dataType.simpleString()}, but {path} holds "
                f"{views.schema[column].dataType.simpleString()} ids; give ids of the same type (--id-type)"
            )
    new = batch.join(views.select("user_id", "asset_id"), ["user_id", "asset_id"], "left_anti")
    known = views.select("asset_id", "asset_idx").distinct()
    top = views.agg(F.max("asset_idx")).first()[0]
    added = new.select("asset_id").distinct().join(known, "asset_id", "left_anti")
    added = added.withColumn("asset_idx", (F.lit(top) + F.row_number().over(Window.orderBy("asset_id"))).cast("int"))
    indexed = new.join(known.unionByName(added), "asset_id").select(*views.columns)
    if not indexed.isEmpty():
        tables.append(config, indexed, "views")


def _rebuild_assets(spark: SparkSession, config: Config, metadata: DataFrame | None) -> None:
    """DIR/assets again from DIR/views (viewers per asset, indices as they are), titles and genres from the
    batch's metadata, else as they were; DIR/unviewed then loses the assets that now have views."""
    views = tables.read(spark, config, "views")
    counts = views.groupBy("asset_id", "asset_idx").agg(F.count("*").alias("views"))
    labels = tables.read(spark, config, "assets").select("asset_id", "title", "genres")
    if tables.exists(spark, config, "unviewed"):
        labels = labels.unionByName(tables.read(spark, config, "unviewed").select(*labels.columns))
    if metadata is not None:
        metadata = metadata.select(*labels.columns).dropDuplicates(["asset_id"])
        labels = metadata.unionByName(labels.join(metadata, "asset_id", "left_anti"))
    labels = labels.dropDuplicates(["asset_id"]).persist()
    try:
        rebuilt = counts.join(labels, "asset_id", "left").select("asset_idx", "asset_id", "views", "title", "genres")
        tables.write(config, rebuilt, "assets")
        _write_unviewed(spark, config, labels)
    finally:
        labels.unpersist()


def count_new_pairs(spark: SparkSession, config: Config) -> dict:
    """Merge a batch of new views into DIR/views, DIR/assets and DIR/pairs; the pair table then equals a full
    recount of all the views.

    Each table changes in one Delta commit, views first. The pair table's commit records the views version
    it counts, so the pair increment is always the views added since (Delta time travel): a run stopped
    between the commits is completed by the next one, and a batch given twice adds nothing.
    """
    started = time.perf_counter()
    counted = _pairs_counted(spark, config)
    batch, metadata, ingest_summary = _new_batch(spark, config)
    _append_new_views(spark, config, batch)
    views_written = time.perf_counter()
    _rebuild_assets(spark, config, metadata)
    assets_written = time.perf_counter()
    path = tables.where(config, "views")
    version = tables.version(spark, config, "views")
    summary = {"ingest": ingest_summary, "views_version": version, "pairs": tables.where(config, "pairs")}
    if version == counted["views_version"]:
        return {**summary, "new_views": 0, "users_with_new_views": 0, "new_assets": 0, "pair_rows_updated": 0}
    commits = tables.delta_table(spark, config, "views").history().where(F.col("version") > counted["views_version"])
    rewrites = commits.where((F.col("operation") != "WRITE") | (F.col("operationParameters")["mode"] != "Append"))
    if not rewrites.isEmpty():
        raise InputError(
            f"{path} was rewritten since {summary['pairs']} was counted (at version {counted['views_version']}, "
            f"now {version}); recount with `film2vec pairs` without --new-events/--since"
        )
    then = tables.read(spark, config, "views", version=counted["views_version"])
    now = tables.read(spark, config, "views", version=version)
    added = now.join(then.select("user_id", "asset_id"), ["user_id", "asset_id"], "left_anti")
    users = added.select("user_id").distinct()
    after = now.join(users, "user_id", "left_semi")
    estimate = estimate_pairs(after)
    check_budget(estimate, config.pairs.pair_budget, after, path)
    if config.pairs.user_weighting == "inverse":  # a user's weight changes with n: their old pairs change too
        count = _pair_counter(spark, config, estimate)
        increment = pair_increment(count(then.join(users, "user_id", "left_semi")), count(after))
    else:
        flagged = added.select("user_id", "asset_id", F.lit(True).alias("new"))
        after = after.join(flagged, ["user_id", "asset_id"], "left").fillna(False, ["new"])
        increment = _pair_counter(spark, config, estimate, increment=True)(after)
    spark.conf.set("spark.databricks.delta.commitInfo.userMetadata", _pairs_record(spark, config, version))
    try:
        tables.delta_table(spark, config, "pairs").alias("pairs").merge(
            increment.alias("increment"),
            "pairs.asset_a = increment.asset_a AND pairs.asset_b = increment.asset_b",
        ).whenMatchedUpdate(set={"co_views": "pairs.co_views + increment.co_views"}).whenNotMatchedInsertAll().execute()
    finally:
        spark.conf.unset("spark.databricks.delta.commitInfo.userMetadata")
    merged = tables.delta_table(spark, config, "pairs").history(1).first()["operationMetrics"]
    pairs_merged = time.perf_counter()
    stats = added.agg(F.count("*").alias("views"), F.countDistinct("user_id").alias("users")).first()
    new_assets = now.agg(F.max("asset_idx")).first()[0] - then.agg(F.max("asset_idx")).first()[0]
    return {
        **summary,
        "new_views": stats["views"],
        "users_with_new_views": stats["users"],
        "new_assets": int(new_assets),
        "pair_rows_updated": int(merged.get("numTargetRowsUpdated", 0)),
        "pair_rows_inserted": int(merged.get("numTargetRowsInserted", 0)),
        "pair_rows_rewritten_unchanged": int(merged.get("numTargetRowsCopied", 0)),
        "seconds_by_step": {
            "append_views": round(views_written - started, 1),
            "rebuild_assets": round(assets_written - views_written, 1),
            "count_and_merge_pairs": round(pairs_merged - assets_written, 1),
            "of_which_merge_scan": round(int(merged.get("scanTimeMs", 0)) / 1000, 1),
            "of_which_merge_rewrite": round(int(merged.get("rewriteTimeMs", 0)) / 1000, 1),
        },
    }


def walk_inputs(config: Config) -> tuple[str, str]:
    """The tables the configured walk draws from: the assets and DIR/pairs (co-view) or DIR/views (bipartite)."""
    return ("assets", "pairs" if config.seasons.walk == "coview" else "views")


def season_sampler_for(spark: SparkSession, config: Config) -> SeasonSampler:
    """The configured walk over its input tables, read at their current versions, which its seasons record."""
    versions = {table: tables.version(spark, config, table) for table in walk_inputs(config)}
    frames = {table: tables.read(spark, config, table, version=version) for table, version in versions.items()}
    return season_sampler(
        config.seasons,
        config.seed,
        frames.pop("assets"),
        **frames,
        drawn_from=provenance(config.seasons, config.seed, versions),
    )


def season_numbers(config: Config) -> range:
    """The seasons a run draws and trains: --seasons of them, or --warm-seasons when warm-starting."""
    return range(config.train.warm_seasons if config.train.warm_start else config.seasons.seasons)


def _seasons_written(spark: SparkSession, config: Config, seasons: list[int]) -> dict:
    written = tables.read(spark, config, "seasons").where(F.col("season").isin(seasons))
    return {"seasons": config.out("seasons"), "season_numbers": seasons, "samples": written.count()}


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
    if not tables.exists(spark, config, "seasons"):
        return []
    table = tables.delta_table(spark, config, "seasons")
    others = ~F.col("season").isin(seasons)
    surplus = sorted(row["season"] for row in table.toDF().where(others).select("season").distinct().collect())
    if surplus:
        with committing(f"{_season_text(surplus)} of {tables.where(config, 'seasons')}"):
            table.delete(others)
        log.info("removed %s of %s, drawn by an earlier run", _season_text(surplus), tables.where(config, "seasons"))
    return surplus


def sample(spark: SparkSession, config: Config, seasons: range | None = None) -> dict:
    """Write the configured seasons of samples to DIR/seasons, each replacing only itself, and delete any
    other season the table holds."""
    seasons = list(seasons if seasons is not None else season_numbers(config))
    removed = drop_other_seasons(spark, config, seasons)
    sampler = season_sampler_for(spark, config)
    try:
        for season in seasons:
            sampler.write(season, config.out("seasons"))
            log.info("season %d sampled", season)
    finally:
        sampler.release()
    return {**_seasons_written(spark, config, seasons), "removed_seasons": removed}


def _redraw_command(config: Config, seasons: list[int]) -> str:
    """The `film2vec sample` command that draws `seasons` with this configuration."""
    flags = [f"--out {shlex.quote(config.data.out)}", f"--seasons {max(seasons) + 1}"]
    if config.data.schema:
        flags.append(f"--schema {shlex.quote(config.data.schema)}")
    defaults = sampler_settings(SeasonsConfig(), 0)
    for name, value in sampler_settings(config.seasons, config.seed).items():
        if defaults.get(name) != value:
            flags.append(f"--{name.replace('_', '-')} {value}")
    return "film2vec sample " + " ".join(flags)


def season_mismatch(spark: SparkSession, config: Config, seasons: list[int]) -> tuple[str | None, list[int]]:
    """(None, []) when every season is there and was drawn with this configuration from the current rows of
    its inputs (their Delta versions, compactions aside); otherwise what differs or is missing, per group of
    seasons, and how to redraw them, with the missing seasons."""
    path = tables.where(config, "seasons")
    present = set()
    if tables.exists(spark, config, "seasons"):
        present = {row["season"] for row in tables.read(spark, config, "seasons").select("season").distinct().collect()}
    missing = [season for season in seasons if season not in present]
    records: dict[int, dict] = {}
    for _, record in tables.commit_records(spark, config, "seasons", SEASON_RECORD) if present else []:
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
                changed[table, version] = tables.changed_since(spark, config, table, version)
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


@dataclass(frozen=True)
class WarmStart:
    """Where a warm-started run starts: the model's vectors of known assets (with their Adagrad accumulators
    when the model kept them), label means for new ones (with empty accumulators: they learn at full rate)."""

    source: str  # the model's artifact URI, an alias resolved to its version
    known_rows: np.ndarray  # asset_idx of the assets the model has a trained vector of
    previous: np.ndarray  # those vectors
    previous_accumulators: np.ndarray | None  # and their accumulators; None: the model kept none
    label_rows: np.ndarray  # asset_idx of new assets started from their labels' mean vector
    label_vectors: np.ndarray
    new_assets: int  # assets the model does not know (label-started or random)

    def starting_rows(self) -> StartingRows:
        accumulators = self.previous_accumulators
        if accumulators is None:
            accumulators = np.zeros(len(self.known_rows))
        return StartingRows(
            np.concatenate((self.known_rows, self.label_rows)),
            np.concatenate((self.previous, self.label_vectors)),
            np.concatenate((accumulators, np.zeros(len(self.label_rows)))),
        )

    def summary(self) -> dict:
        return {
            "from": self.source,
            "known_assets": len(self.known_rows),
            "new_assets": self.new_assets,
            "new_assets_started_from_labels": len(self.label_rows),
            "optimiser_state_carried": self.previous_accumulators is not None,
        }


def warm_start(config: Config, catalogue: pa.Table) -> WarmStart:
    """The starting vectors for `catalogue` (asset_idx order, with genres) from the model --warm-start names."""
    source = tracking.model_uri(config.train.warm_start)
    previous, optimiser_state = tracking.model_tables(source)
    if "source" in previous.column_names:  # provisional vectors were made from labels, not learned: start afresh
        previous = previous.filter(pc.equal(previous.column("source"), "views"))
    vectors = np.stack(previous.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    if vectors.shape[1] != config.train.dim:
        raise ConfigError(
            f"flag --warm-start: {source} has vectors of dimension {vectors.shape[1]}, --dim is {config.train.dim}"
        )
    position = pd.Index(previous.column("asset_id").to_pandas()).get_indexer(catalogue.column("asset_id").to_pandas())
    known, new = np.flatnonzero(position >= 0), np.flatnonzero(position < 0)
    if known.size == 0:
        raise InputError(
            f"flag --warm-start: {source} has a vector for none of the {catalogue.num_rows} assets in "
            f"{tables.where(config, 'assets')}"
        )
    genres = catalogue.column("genres").to_pylist()
    wanted = [genres[i] for i in new] if config.train.warm_new_assets == "labels" else [None] * len(new)
    from_labels, found = label_mean_vectors(vectors[position[known]], [genres[i] for i in known], wanted)
    accumulators = None
    if optimiser_state is None:
        warnings.warn(
            f"{source} kept no optimiser state: known assets start with empty Adagrad accumulators and move as far "
            f"as new ones at --warm-learning-rate {config.train.warm_learning_rate} (0.02 keeps them close)",
            stacklevel=2,
        )
    else:
        state_row = pd.Index(optimiser_state.column("asset_id").to_pandas()).get_indexer(
            previous.column("asset_id").to_pandas()
        )
        kept = optimiser_state.column("accumulator").to_numpy()
        accumulators = np.where(state_row >= 0, kept[np.maximum(state_row, 0)], 0.0)[position[known]]
    return WarmStart(source, known, vectors[position[known]], accumulators, new[found], from_labels[found], len(new))


def _provisional_vectors(
    spark: SparkSession, config: Config, trained: pa.Table, trained_genres: list
) -> pa.Table | None:
    """Cold start: vectors from labels for DIR/unviewed's assets, marked source = 'metadata' (None when off)."""
    if not config.train.cold_start or not tables.exists(spark, config, "unviewed"):
        return None
    unviewed = tables.read(spark, config, "unviewed").select("asset_id", "genres").toArrow()
    known_vectors = np.stack(trained.column("vector").to_numpy(zero_copy_only=False))
    vectors, found = label_mean_vectors(known_vectors, trained_genres, unviewed.column("genres").to_pylist())
    ids = unviewed.column("asset_id").filter(pa.array(found)).cast(trained.schema.field("asset_id").type)
    return tracking.embeddings_table(ids, vectors[found], "metadata")


def _genre_precision_on_views(catalogue: pa.Table, vectors: np.ndarray) -> float:
    """GenreP@10 with every view as a train view: agreement of the neighbours with the metadata, no held-out."""
    views = catalogue.column("views").to_numpy().astype(np.int64)
    viewed = np.repeat(np.arange(len(views)), views)
    none = np.zeros(0, np.int64)
    genres = [set(names or ()) for names in catalogue.column("genres").to_pylist()]
    return genre_precision(vectors, Split(np.zeros_like(viewed), viewed, none, none), genres)


def train_vectors(
    spark: SparkSession,
    config: Config,
    seasons: Iterable[int] | None = None,
    held_out: HeldOut | None = None,
    score_on_views: bool = False,
) -> dict:
    """Train on the seasons, log the run to MLflow, register the model, then write DIR/embeddings and
    DIR/neighbours (each asset's --top-k nearest), both stamped with the registered version.

    `seasons` defaults to all configured ones (--warm-seasons of them when warm-starting); `film2vec run`
    passes a SeasonFeed that yields each season once it is written. Each finished season is checkpointed in
    DIR/checkpoints (a local output folder), so a killed run started again resumes after its last finished
    season; the checkpoint goes once the run is written. With `held_out`, the protocol's figures of the new
    vectors are logged to the run and returned; without it, GenreP@10 over all views is, with
    `score_on_views`, a GenreP floor or a deferred alias (--move-alias by_promote). The alias moves to the
    new version only when the figures clear the configured floors, or later by `film2vec promote`.
    """
    assets = tables.read(spark, config, "assets").orderBy("asset_idx")
    trained = tables.read(spark, config, "pairs").select(F.col("asset_a").alias("asset_id")).distinct()
    catalogue = assets.select("asset_idx", "asset_id", "views", "genres").toArrow()
    with_neighbours = (
        assets.where(F.col("views") >= config.train.min_views)
        .join(trained, "asset_id", "left_semi")
        .select("asset_idx")
        .toArrow()
    )
    store = tracking.use_store(config.data.out)
    warm = warm_start(config, catalogue) if config.train.warm_start else None
    if warm:
        config = copy.deepcopy(config)
        config.train.warm_start, config.train.learning_rate = warm.source, config.train.warm_learning_rate
    n_seasons = len(season_numbers(config))
    seasons = seasons if seasons is not None else season_numbers(config)
    mismatch = None
    if not isinstance(seasons, SeasonFeed):  # a feed's seasons are drawn now, by this configuration
        seasons = list(seasons)
        mismatch, missing = season_mismatch(spark, config, seasons)
        if mismatch and (missing or not config.train.allow_season_mismatch):  # no flag trains on missing rows
            raise InputError(mismatch)
        if mismatch:
            log.warning("training anyway (--allow-season-mismatch): %s", mismatch)
    trained_seasons = list(seasons.seasons if isinstance(seasons, SeasonFeed) else seasons)
    checkpoints = config.out("checkpoints") if Path(config.out("checkpoints")).is_absolute() else None  # local only
    with (
        mlflow.start_run(experiment_id=tracking.experiment_id(config.tracking.experiment, store)) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params(tracking.flat_params(config))

        def log_epoch(report) -> None:
            mlflow.log_metrics(
                {"loss": report.loss, "samples_per_second": report.samples_per_second, "season": report.season},
                step=report.step,
            )
            log.info(
                "season %d epoch %d: loss %.4f, %s samples/s",
                report.season,
                report.epoch + 1,
                report.loss,
                f"{report.samples_per_second:,.0f}",
            )

        result = train(
            config.out("seasons"),
            seasons,
            catalogue.num_rows,
            config.train,
            config.seed,
            log_epoch,
            n_seasons=n_seasons,
            checkpoints=checkpoints,
            start=warm.starting_rows() if warm else None,
        )
        versions = {table: tables.version(spark, config, table) for table in TRAINED_FROM}
        tracking.log_input_tables({table: (tables.where(config, table), versions[table]) for table in TRAINED_FROM})
        if mismatch:
            mlflow.set_tag(SEASON_MISMATCH_TAG, mismatch)
        rows = with_neighbours.column("asset_idx").to_numpy()
        embeddings = tracking.embeddings_table(catalogue.column("asset_id").take(rows), result.vectors[rows])
        genres = catalogue.column("genres").to_pylist()
        provisional = _provisional_vectors(spark, config, embeddings, [genres[row] for row in rows])
        if provisional is not None:
            embeddings = pa.concat_tables((embeddings, provisional))
        figures = held_out.score(embeddings) if held_out else {}
        deferred = config.tracking.move_alias == "by_promote"
        if not held_out and (score_on_views or deferred or config.tracking.alias_floor_genre_p > 0):
            vectors = np.zeros_like(result.vectors)
            vectors[rows] = result.vectors[rows]
            figures["genre_p_at_10"] = _genre_precision_on_views(catalogue, vectors)
        extra = {"provisional_vectors": provisional.num_rows if provisional is not None else 0}
        if warm:
            kept = np.isin(warm.known_rows, rows)
            extra["warm_start"] = {
                **warm.summary(),
                "median_cosine_to_previous": median_cosine(warm.previous[kept], result.vectors[warm.known_rows[kept]]),
            }
            mlflow.log_metric("warm_start_median_cosine", extra["warm_start"]["median_cosine_to_previous"])
        mlflow.log_metric("provisional_vectors", extra["provisional_vectors"])
        floors = tracking.alias_decision(figures, config.tracking)
        decision = floors
        if deferred:
            decision = tracking.AliasDecision(False, "left to `film2vec validate` and `film2vec promote`")
        figures_from = "held-out split" if held_out else "all views"
        mlflow.set_tags(
            {"alias_moved": str(decision.moved).lower(), "alias_decision": decision.reason, FIGURES_TAG: figures_from}
        )
        plot_loss(result.history, Path(tmp) / "loss.png")
        mlflow.log_artifact(str(Path(tmp) / "loss.png"), "plots")
        optimiser_state = pa.table(
            {"asset_id": catalogue.column("asset_id").take(rows), "accumulator": result.accumulators[rows]}
        )
        registered = tracking.log_similar_assets_model(
            embeddings, Path(tmp), config.tracking, decision.moved, optimiser_state, figures
        )
        written = spark.createDataFrame(embeddings).withColumns(
            {"model_version": F.lit(int(registered.version)), "run_id": F.lit(run.info.run_id)}
        )
        record = json.dumps(
            {
                EMBEDDINGS_RECORD: {
                    "seasons": trained_seasons,
                    "inputs": versions,
                    "model_version": int(registered.version),
                    "run_id": run.info.run_id,
                    "season_mismatch": mismatch,
                }
            }
        )
        tables.write(config, written, "embeddings", userMetadata=record)
        neighbours = neighbours_table(
            tables.read(spark, config, "embeddings").select("asset_id", "vector"), config.tracking.top_k
        )
        neighbours = neighbours.withColumn("model_version", F.lit(int(registered.version)))
        tables.write(config, neighbours, "neighbours", userMetadata=record)
        mlflow.log_dict(
            {"device": result.device, "assets": len(rows), "resumed_seasons": result.resumed_seasons, **extra},
            "training.json",
        )
    if checkpoints:
        clear_checkpoint(checkpoints)
    return {
        "embeddings": tables.where(config, "embeddings"),
        "assets_with_vectors": len(rows),
        **extra,
        "resumed_seasons": result.resumed_seasons,
        **({"season_mismatch": mismatch} if mismatch else {}),
        **({"figures": figures} if figures else {}),
        "neighbours": tables.where(config, "neighbours"),
        "run_id": run.info.run_id,
        "model": registered.uri,
        "model_id": registered.model_id,
        "alias": {
            "name": config.tracking.alias,
            "moved": decision.moved,
            "reason": decision.reason,
            "figures_from": figures_from,
            "floors": {"cleared": floors.moved, "reason": floors.reason},  # `--fail-on-floors` exits 5 unless cleared
        },
        "tracking_uri": store.uri,
        "mlflow_ui": store.ui_command,
    }


def _timed(name: str, stage: Callable[..., dict], *arguments, **options) -> dict:
    """Run a stage, logging its start and its wall time, which its summary gets as "seconds"."""
    log.info("%s …", name)
    started = time.perf_counter()
    summary = stage(*arguments, **options)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    log.info("%s done in %.1f s", name, summary["seconds"])
    return summary


@dataclass(frozen=True)
class HeldOut:
    """The protocol's split of an events table, in the asset codes of its whole catalogue."""

    split: Split
    asset_ids: pa.Array  # asset id of each code
    genres: list[set[str]]  # genres of each code

    def score(self, embeddings: pa.Table) -> dict[str, float]:
        """The protocol's figures of an (asset_id, vector) table; catalogue assets it lacks have no vector."""
        return evaluate_vectors(self._vectors(embeddings), self.split, self.genres)

    def score_recommender(self, user_vectors: np.ndarray, embeddings: pa.Table) -> dict[str, float]:
        """Next-watch figures of a factor model's own ranking, user vector · asset vector: `user_vectors` has a
        row per user code of the split, `embeddings` the asset vectors as an (asset_id, vector) table."""
        return next_watch_of_user_vectors(user_vectors, self._vectors(embeddings), self.split)

    def _vectors(self, embeddings: pa.Table) -> np.ndarray:
        """An (asset_id, vector) table as a matrix with a row per asset code, zero where it has no vector."""
        ids = pd.Index(self.asset_ids.to_pandas())
        rows = ids.get_indexer(embeddings.column("asset_id").to_pandas())
        known = rows >= 0
        if not known.any():
            raise InputError("the embeddings share no asset_id with the events' catalogue; are they of these events?")
        found = np.stack(embeddings.column("vector").to_numpy(zero_copy_only=False)[known])
        vectors = np.zeros((len(ids), found.shape[1]))
        vectors[rows[known]] = found
        return vectors


def split_events(spark: SparkSession, config: Config) -> tuple[HeldOut, dict[str, pa.Table]]:
    """The configured events split per the protocol: the held-out split, and the train views, test views
    and metadata as Arrow tables ready to be written as events.

    Views are the validated ones (one per user and asset, at its earliest time); a view without a time
    is ordered by asset id alone. The split is a driver-side numpy function, so the views must fit there.
    """
    events, metadata = events_source(spark, config)
    found = ingest(spark, events, metadata, config.data.id_type, columns_of(config.data))
    assets = found.assets.orderBy("asset_idx").select("asset_id", "title", "genres").toArrow()
    views = (
        found.views.join(found.assets.select("asset_id", "asset_idx"), "asset_id")
        .select("user_id", "asset_id", "viewed_at", "asset_idx")
        .toArrow()
    )
    if views.num_rows == 0:
        raise InputError(f"events at {events}: no valid view to split")
    user = pd.factorize(views.column("user_id").to_pandas())[0].astype(np.int64)
    asset = views.column("asset_idx").to_numpy().astype(np.int64)
    micros = pc.fill_null(views.column("viewed_at").cast(pa.int64()), 0).to_numpy()
    split = split_views(user, asset, micros)
    is_test = np.isin(user * assets.num_rows + asset, split.test_user * assets.num_rows + split.test_asset)
    columns = views.select(["user_id", "asset_id", "viewed_at"])
    genres = [set(names or ()) for names in assets.column("genres").to_pylist()]
    return HeldOut(split, assets.column("asset_id"), genres), {
        "train": columns.filter(pa.array(~is_test)),
        "test": columns.filter(pa.array(is_test)),
        "metadata": assets,
    }


def evaluate(spark: SparkSession, config: Config) -> dict:
    """Score vectors with the fixed protocol: train on each user's earlier views, test on the last 5.

    Writes DIR/split/{train,test,metadata}, then runs pairs, sample and train with the train views as the
    events under DIR, logging the figures to the training run; with `--embeddings TABLE` it scores that
    table instead of training. The figures are under "figures". With --baseline als, Spark ALS is trained on
    the same train views and scored by the same code: its figures and both wall times are under "baseline"
    and "film2vec_seconds", logged to the training run as als_* metrics (`film2vec evaluate` prints both side
    by side).
    """
    held_out, split_tables = split_events(spark, config)
    summary: dict = {"users_evaluated": int(np.unique(held_out.split.test_user).size)}
    log.info("split: the last views of %s users held out for testing", f"{summary['users_evaluated']:,}")
    if config.evaluate.embeddings:
        embeddings = tables.read_input(spark, config.evaluate.embeddings, "embeddings", ("asset_id", "vector"))
        embeddings = embeddings.select("asset_id", "vector").toArrow()
        summary.update(embeddings=config.evaluate.embeddings, figures=held_out.score(embeddings))
        if config.evaluate.baseline:
            summary["baseline"] = als_baseline(spark, config, held_out)
        return summary
    started = time.perf_counter()
    for name, table in split_tables.items():
        tables.write(config, spark.createDataFrame(table), f"split/{name}")
    on_train = copy.deepcopy(config)
    on_train.data.events, on_train.data.metadata = config.out("split/train"), config.out("split/metadata")
    summary["pairs"] = _timed("pairs", count_pairs, spark, on_train)
    summary["sample"] = _timed("sample", sample, spark, on_train)
    summary["train"] = _timed("train", train_vectors, spark, on_train, held_out=held_out)
    summary.update(split=config.out("split"), figures=summary["train"]["figures"])
    if not config.evaluate.baseline:
        return summary
    summary["film2vec_seconds"] = round(time.perf_counter() - started, 1)
    summary["baseline"] = als_baseline(spark, config, held_out)
    with mlflow.start_run(run_id=summary["train"]["run_id"]):
        baseline = summary["baseline"]
        mlflow.log_metrics(
            {
                **{f"als_{name}": value for name, value in baseline["figures"].items()},
                **{f"als_recommend_{name}": value for name, value in baseline["recommend_figures"].items()},
                "als_seconds": baseline["seconds"],
                "film2vec_seconds": summary["film2vec_seconds"],
            }
        )
    return summary


def als_baseline(spark: SparkSession, config: Config, held_out: HeldOut) -> dict:
    """Spark ALS (rank --dim) on the split's train views, scored by the protocol: its item factors as the
    vectors ("figures"), and its own ranking by user · item factors ("recommend_figures"); "seconds" is the
    wall time of both, fitting included. The item factors are written to DIR/split/als_embeddings, a table
    `film2vec evaluate --embeddings` scores to the same figures."""
    log.info("baseline: Spark ALS on the same train views …")
    started = time.perf_counter()
    split = held_out.split
    train_views = pa.table(
        {"user_idx": split.train_user.astype(np.int32), "asset_idx": split.train_asset.astype(np.int32)}
    )
    factors = fit_als(spark.createDataFrame(train_views), config.train.dim, config.evaluate, config.seed)
    items = tracking.embeddings_table(held_out.asset_ids.take(factors.assets), factors.asset_vectors)
    users = factors.user_matrix(int(split.train_user.max()) + 1)
    figures = held_out.score(items)
    recommend_figures = held_out.score_recommender(users, items)
    seconds = round(time.perf_counter() - started, 1)
    log.info("baseline done in %.1f s", seconds)
    tables.write(config, spark.createDataFrame(items), "split/als_embeddings")
    return {
        "method": "als",
        "figures": figures,
        "recommend_figures": recommend_figures,
        "seconds": seconds,
        "embeddings": config.out("split/als_embeddings"),
        "settings": {
            "rank": config.train.dim,
            "iterations": config.evaluate.als_iterations,
            "reg_param": config.evaluate.als_reg_param,
            "alpha": config.evaluate.als_alpha,
        },
    }


def run(spark: SparkSession, config: Config) -> dict:
    """The whole pipeline: ingest and pairs, seasons, training, registration; each stage timed.

    With pipelined_seasons, season k + 1 is sampled while the trainer trains on season k; the seconds the
    trainer waited for samples go to MLflow (`waited_for_samples_seconds`, step = season) and the summary.
    """
    summary = {"pairs": _timed("pairs", count_pairs, spark, config)}
    if not config.seasons.pipelined_seasons:
        summary["sample"] = _timed("sample", sample, spark, config)
        summary["train"] = _timed("train", train_vectors, spark, config)
        return summary
    seasons = list(season_numbers(config))
    removed = drop_other_seasons(spark, config, seasons)
    sampler = season_sampler_for(spark, config)

    def log_wait(season: int, seconds: float) -> None:
        mlflow.log_metric("waited_for_samples_seconds", seconds, step=season)

    try:
        with SeasonFeed(lambda season: sampler.write(season, config.out("seasons")), seasons, log_wait) as feed:
            trained = _timed(
                "sample and train (season k + 1 drawn while k trains)", train_vectors, spark, config, seasons=feed
            )
    finally:
        sampler.release()
    trained["waited_for_samples_seconds"] = round(sum(feed.waited.values()), 1)
    mlflow.MlflowClient().log_metric(
        trained["run_id"], "waited_for_samples_seconds_total", trained["waited_for_samples_seconds"]
    )
    summary["sample"] = {
        **_seasons_written(spark, config, seasons),
        "removed_seasons": removed,
        "seconds": round(feed.sampling_seconds, 1),
    }
    summary["train"] = trained
    return summary


def refresh(spark: SparkSession, config: Config) -> dict:
    """The nightly refresh: new views merged into the tables and pair counts, --warm-seasons seasons drawn,
    training warm-started from the serving model (models:/NAME@ALIAS unless --warm-start names another),
    then the alias moves to the new version only when its figures clear the floors.

    The figures are GenreP@10 over all views (no held-out split here); a --alias-floor-recall therefore
    blocks every refresh (see `film2vec evaluate` and benchmarks/bench_refresh.py for next-watch figures).
    """
    if not (config.data.new_events or config.data.since):
        raise ConfigError("film2vec refresh: give the new views, --new-events PATH or --since TIME")
    warm = copy.deepcopy(config)
    warm.train.warm_start = config.train.warm_start or f"models:/{config.tracking.model_name}@{config.tracking.alias}"
    seasons = season_numbers(warm)
    summary = {"pairs": _timed("merge new views", count_new_pairs, spark, warm)}
    if config.refresh.compact:
        summary["compact"] = _timed("compact", compact, spark, config)
    summary["sample"] = _timed("sample", sample, spark, warm, seasons)
    summary["train"] = _timed("train (warm start)", train_vectors, spark, warm, seasons, score_on_views=True)
    return summary


COMPACTED_TABLES = ("views", "pairs")  # the tables a refresh appends to or merges into, night after night


def compact(spark: SparkSession, config: Config) -> dict:
    """OPTIMIZE the tables a refresh changes (the MERGE leaves small and rewritten files behind every night),
    then VACUUM the files no version younger than --vacuum-retention-hours references."""
    hours = config.refresh.vacuum_retention_hours
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    summary = {"vacuum_retention_hours": hours}
    for table in COMPACTED_TABLES:
        delta = tables.delta_table(spark, config, table)
        optimized = delta.optimize().executeCompaction().first()["metrics"]
        if hours < 168:  # Delta refuses a retention under its default unless the check is off for this call
            spark.conf.set(check, "false")
        try:
            delta.vacuum(hours)
        finally:
            spark.conf.unset(check)
        summary[table] = {"files_added": optimized["numFilesAdded"], "files_removed": optimized["numFilesRemoved"]}
    return summary


def describe(summary: dict) -> str:
    """A summary as indented JSON for the terminal."""
    return json.dumps(summary, indent=2, default=str)
