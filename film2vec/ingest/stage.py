"""Ingest: the synthetic catalogue, the events validated into DIR/views and DIR/assets, and the new views a
refresh appends (DIR/unviewed keeps the metadata's assets with no view yet)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from film2vec import tables
from film2vec.config import Config, ConfigError
from film2vec.errors import InputError
from film2vec.ingest import validated
from film2vec.ingest.readers import Source, described, detect_layout, ingest_source, source_of
from film2vec.ingest.synthetic import plan_catalogue
from film2vec.timing import Stopwatch

log = logging.getLogger(__name__)


def generate(spark: SparkSession, config: Config) -> dict:
    """Write the synthetic catalogue's events and metadata as Delta tables under DIR/synthetic.

    The events are drawn by Spark, a chunk of users per task (plan_catalogue), so no process ever holds more
    than a chunk of them and the catalogue can be as large as the cluster's disks.

    Example::

        from film2vec import config, spark
        from film2vec.ingest.stage import generate
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        generate(spark.get_spark(settings.spark), settings)
    """
    synthetic_events_table = tables.of(config, "synthetic/events")
    plan = plan_catalogue(config.synthetic, config.seed)
    events, assets = config.out("synthetic/events"), config.out("synthetic/assets")

    def draw(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for chunk in batch.column("id").to_pylist():
                yield from plan.events_chunk(chunk).to_batches()

    partitions = min(plan.chunks, int(spark.conf.get("spark.sql.shuffle.partitions")))
    chunks = spark.range(0, plan.chunks, 1, max(partitions, 1))
    synthetic_events_table.write(chunks.mapInArrow(draw, "user_id long, asset_id long, viewed_at timestamp"))
    # written last, with the settings it was drawn by: a run finds the catalogue whole, and drawn as asked
    tables.of(config, "synthetic/assets").write(plan.assets_table(), record=_drawn_by(config))
    return {
        "events": events,
        "metadata": assets,
        "views": synthetic_events_table.read(spark).count(),
        "users": int(config.synthetic.users),
        "assets": int(config.synthetic.catalogue_size),
        "genres": int(config.synthetic.genres),
    }


# film2vec's own events tables under DIR, by their metadata's: read as written, whatever the reading settings
OWN_EVENTS = {"synthetic/events": "synthetic/assets", "split/train": "split/metadata"}
# the one of them written from views Spark's ingest validated (evaluate's split): not validated again
VALIDATED_EVENTS = "split/train"


def events_source(spark: SparkSession, config: Config) -> Source:
    """The events (and metadata) to read, with how to read them: the user's input by its reading settings, or
    one of film2vec's own tables (OWN_EVENTS: evaluate's split, or, without --events, the synthetic catalogue,
    drawn on demand) as it is."""
    own = {config.out(events): config.out(metadata) for events, metadata in OWN_EVENTS.items()}
    if config.data.events in own:
        return Source(config.data.events, own[config.data.events])
    if config.data.events:
        return source_of(config.data)
    synthetic_assets_table = tables.of(config, "synthetic/assets")
    synthetic = Source(config.out("synthetic/events"), config.out("synthetic/assets"))
    if not synthetic_assets_table.exists(spark):
        log.info("no --events: drawing the synthetic catalogue into %s", config.out("synthetic"))
        generate(spark, config)
        return synthetic
    records = synthetic_assets_table.records(spark, "synthetic")  # newest first
    if not records or records[0][1] != _drawn_by(config)["synthetic"]:
        log.warning(
            "no --events: the synthetic catalogue in %s was drawn by other settings; drawing it again",
            config.out("synthetic"),
        )
        generate(spark, config)
    return synthetic


def _drawn_by(config: Config) -> dict:
    """What decides the synthetic catalogue's rows: its settings and the seed."""
    return {"synthetic": {**dataclasses.asdict(config.synthetic), "seed": config.seed}}


def prepare_views(spark: SparkSession, config: Config) -> dict:
    """Validate the events into DIR/views, DIR/assets and DIR/rejects; stop when no view is valid. Evaluate's
    split, validated when it was drawn, is indexed on the driver instead where it fits there (a local table of
    at most DRIVER_ROWS rows: prepare_validated_views)."""
    source = events_source(spark, config)
    if source.events == config.out(VALIDATED_EVENTS):
        split = tables.of(config, VALIDATED_EVENTS).driver_rows(["user_id", "asset_id", "viewed_at"])
        if split is not None:
            return prepare_validated_views(spark, config, source, split)
    rejects_table = tables.of(config, "rejects")
    assets_table = tables.of(config, "assets")
    views_table = tables.of(config, "views")
    found = ingest_source(spark, source)
    summary = dict(found.summary)
    if summary["valid"] == 0:
        rejects_table.write(found.rejects)
        found.release()
        raise InputError(
            f"events at {source.events}: none of the {summary['rows']} rows is a valid view "
            f"(rejected by reason: {summary['rejected_by_reason']}); see {rejects_table.where}"
        )
    # rejects and unviewed are written by threads while assets then views are: Spark runs the jobs side by side.
    # The counts bound each table's rows, so small ones are written from the driver.
    rejected, valid = summary["rejected"] + summary["metadata_rejected"], summary["valid"]
    with ThreadPoolExecutor(2, thread_name_prefix="film2vec-ingest") as pool:
        beside = [
            pool.submit(rejects_table.write, found.rejects, at_most=rejected),
            pool.submit(_write_unviewed, spark, config, found.metadata, found.views, summary["metadata_rows"]),
        ]
        assets_table.write(found.assets, at_most=valid)
        assets = assets_table.read(spark)
        views = found.views.join(assets.select("asset_id", "asset_idx"), "asset_id")
        views_table.write(views, at_most=valid)
        for written in beside:
            written.result()
    found.release()
    views, users = views_table.rows_and_distinct(spark, "user_id")
    summary.update(views=views, users=users, assets=assets.count(), duplicates_merged=summary["valid"] - views)
    return summary


def prepare_validated_views(spark: SparkSession, config: Config, source: Source, split: pa.Table) -> dict:
    """DIR/views, DIR/assets, DIR/unviewed and an empty DIR/rejects from evaluate's split (its rows read by the
    driver), indexed there (film2vec/ingest/validated.py), with the summary Spark's ingest gives of the same views."""
    metadata = tables.of(config, OWN_EVENTS[VALIDATED_EVENTS]).read_arrow(spark, ["asset_id", "title", "genres"])
    if split.num_rows == 0:
        raise InputError(f"events at {source.events}: no rows (the input is empty)")
    validated.check_validated(split, source.events)
    assets, views, unviewed = validated.index_views(split, metadata)
    tables.of(config, "rejects").write(validated.no_rejects())
    tables.of(config, "unviewed").write(unviewed)
    tables.of(config, "assets").write(assets)
    tables.of(config, "views").write(views)
    unlabelled = assets.filter(pc.invert(pc.is_in(assets.column("asset_id"), value_set=metadata.column("asset_id"))))
    return {
        "source": source.events,
        "layout": detect_layout(source.events),
        "id_type": described(validated.id_types(split)),
        "rows": split.num_rows,
        "valid": split.num_rows,
        "rejected": 0,
        "rejected_by_reason": {},
        "metadata": source.metadata,
        "metadata_rows": metadata.num_rows,
        "metadata_rejected": 0,
        "views_without_metadata": pc.sum(unlabelled.column("views")).as_py() or 0,
        "assets_without_metadata": unlabelled.num_rows,
        "views": views.num_rows,
        "users": pc.count_distinct(views.column("user_id")).as_py(),
        "assets": assets.num_rows,
        "duplicates_merged": 0,
    }


def since_moment(text: str) -> datetime:
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


def _write_unviewed(
    spark: SparkSession, config: Config, metadata: DataFrame | None, views: DataFrame, at_most: int | None = None
) -> None:
    """DIR/unviewed: the metadata's assets that none of the views names (empty without metadata); `at_most`
    bounds the metadata's rows when known."""
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
    tables.of(config, "unviewed").write(unviewed.join(viewed, "asset_id", "left_anti"), at_most=at_most)


def new_batch(spark: SparkSession, config: Config) -> tuple[DataFrame, DataFrame | None, dict]:
    """The batch's valid views (from --new-events, else --events; at or after --since when given), its
    usable metadata, and its ingest summary."""
    if config.data.new_events:
        source = dataclasses.replace(source_of(config.data), events=config.data.new_events)
    else:
        source = events_source(spark, config)
    found = ingest_source(spark, source)
    views = found.views
    if config.data.since:
        views = views.where(F.col("viewed_at") >= F.lit(since_moment(config.data.since)))
    return views, found.metadata, found.summary


def append_new_views(spark: SparkSession, config: Config, batch: DataFrame) -> int:
    """Append the batch's (user, asset) views that DIR/views lacks, in one commit (none without any); returns
    how many. Known assets keep their asset_idx; new ones get the next indices in asset id order."""
    views_table = tables.of(config, "views")
    path = views_table.where
    views = views_table.read(spark)
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
    indexed = new.join(known.unionByName(added), "asset_id").select(*views.columns).persist()
    try:
        appended = indexed.count()
        if appended:
            views_table.append(indexed)
    finally:
        indexed.unpersist()
    return appended


def assets_count_the_views(spark: SparkSession, config: Config) -> bool:
    """Whether DIR/assets counts every view of DIR/views (its viewers sum to the views' rows)."""
    views = tables.of(config, "views").read(spark).count()
    counted = tables.of(config, "assets").read(spark).agg(F.sum("views")).first()[0] or 0
    return views == counted


def rebuild_assets(spark: SparkSession, config: Config, metadata: DataFrame | None) -> None:
    """DIR/assets again from DIR/views (viewers per asset, indices as they are), titles and genres from the
    batch's metadata, else as they were; DIR/unviewed then loses the assets that now have views."""
    assets_table = tables.of(config, "assets")
    unviewed_table = tables.of(config, "unviewed")
    views = tables.of(config, "views").read(spark)
    counts = views.groupBy("asset_id", "asset_idx").agg(F.count("*").alias("views"))
    labels = assets_table.read(spark).select("asset_id", "title", "genres")
    if unviewed_table.exists(spark):
        labels = labels.unionByName(unviewed_table.read(spark).select(*labels.columns))
    if metadata is not None:
        metadata = metadata.select(*labels.columns).dropDuplicates(["asset_id"])
        labels = metadata.unionByName(labels.join(metadata, "asset_id", "left_anti"))
    labels = labels.dropDuplicates(["asset_id"]).persist()
    try:
        rebuilt = counts.join(labels, "asset_id", "left").select("asset_idx", "asset_id", "views", "title", "genres")
        assets_table.write(rebuilt)
        _write_unviewed(spark, config, labels, views)
    finally:
        labels.unpersist()


def merge_new_views(spark: SparkSession, config: Config) -> dict:
    """A batch of new views (--new-events or --since) into DIR/views and DIR/assets, one commit each, views
    first; a batch given twice adds nothing (no commit). Returns the ingest summary, how many views were new,
    the views' version and the seconds of each commit."""
    watch = Stopwatch()
    batch, metadata, ingest_summary = new_batch(spark, config)
    appended = append_new_views(spark, config, batch)
    appended_in = watch.lap()
    if appended or not assets_count_the_views(spark, config):  # a run stopped after the views' commit too
        rebuild_assets(spark, config, metadata)
    return {
        "ingest": ingest_summary,
        "new_views": appended,
        "views_version": tables.of(config, "views").version(spark),
        "seconds_by_step": {
            "append_views": appended_in,
            "rebuild_assets": watch.lap(),
        },
    }
