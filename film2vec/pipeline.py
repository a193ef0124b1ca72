"""The stages composed: `run` (inputs, seasons, training) and the nightly `refresh`. The stages themselves are
the `stage.py` of ingest/, pairs/, seasons/, train/ and evaluation/, each reading and writing Delta tables here:

    DIR/synthetic/{events,assets}   the generated catalogue (when no events are given)
    DIR/views      clean views: user_id, asset_id, viewed_at, asset_idx (one row per user and asset)
    DIR/assets     asset_idx, asset_id, views, title, genres (asset_idx never changes in a refresh)
    DIR/unviewed   asset_id, title, genres: assets in the metadata with no view yet (cold start)
    DIR/rejects    rows set aside: reason, line, source
    DIR/pairs      asset_a, asset_b, co_views (counted when the walk reads them, or by `film2vec pairs`)
    DIR/seasons    season, draw, origin, target (asset indices), partitioned by season
    DIR/embeddings asset_id, vector, source ('views': trained; 'metadata': provisional, from labels)
Each function returns a summary dict of what it wrote; the CLI prints it.
"""

from __future__ import annotations

import copy
import logging

import mlflow
from pyspark.sql import SparkSession

from film2vec import tables
from film2vec.config import Config
from film2vec.inputs import inputs_with_store
from film2vec.seasons.stage import (
    drop_other_seasons,
    sample,
    season_feed,
    season_numbers,
    seasons_written,
    walk_inputs,
)
from film2vec.timing import timed
from film2vec.train.stage import train_vectors

log = logging.getLogger(__name__)


def run(spark: SparkSession, config: Config) -> dict:
    """The whole pipeline: its inputs (prepare_inputs), seasons, training, registration; each stage timed.

    With pipelined_seasons, season k + 1 is sampled while the trainer trains on season k; the seconds the
    trainer waited for samples go to MLflow (`waited_for_samples_seconds`, step = season) and the summary.

    Example::

        from film2vec import config, spark, pipeline
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        pipeline.run(spark.get_spark(settings.spark), settings)
    """
    summary = {"inputs": inputs_with_store("inputs", spark, config)}
    if not config.seasons.pipelined_seasons:
        summary["sample"] = timed("sample", sample, spark, config)
        summary["train"] = timed("train", train_vectors, spark, config)
        return summary
    seasons = list(season_numbers(config))

    def log_wait(season: int, seconds: float) -> None:
        mlflow.log_metric("waited_for_samples_seconds", seconds, step=season)

    with season_feed(spark, config, seasons, log_wait) as feed:
        trained = timed(
            "sample and train (season k + 1 drawn while k trains)", train_vectors, spark, config, seasons=feed
        )
    removed = drop_other_seasons(spark, config, sorted({*seasons, *trained["volume"]["seasons"]}))  # once trained
    trained["waited_for_samples_seconds"] = round(sum(feed.waited.values()), 1)
    mlflow.MlflowClient().log_metric(
        trained["run_id"], "waited_for_samples_seconds_total", trained["waited_for_samples_seconds"]
    )
    summary["sample"] = {
        **seasons_written(config, feed.written),
        "removed_seasons": removed,
        "seconds": round(feed.sampling_seconds, 1),
    }
    summary["train"] = trained
    return summary


def compacted(spark: SparkSession, config: Config, names: tuple[str, ...], retention_hours: float) -> dict:
    """The tables a refresh appends to night after night, each compacted and vacuumed (Table.compact)."""
    compaction = {name: tables.of(config, name).compact(spark, retention_hours) for name in names}
    return {"vacuum_retention_hours": retention_hours, **compaction}


def refresh(spark: SparkSession, config: Config) -> dict:
    """The nightly refresh: new views merged into the tables and pair counts, --warm-seasons seasons drawn,
    training warm-started from the serving model (models:/NAME@ALIAS unless --warm-start names another),
    then the alias moves to the new version only when its figures clear the floors.

    The figures are GenreP@10 over all views (no held-out split here); a --alias-floor-recall therefore
    blocks every refresh (see `film2vec evaluate` and benchmarks/bench_refresh.py for next-watch figures).

    Example::

        from film2vec import config, spark, pipeline
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        settings.data.new_events = "/tmp/f2v-new-views"
        pipeline.refresh(spark.get_spark(settings.spark), settings)
    """
    config.check("refresh")
    warm = copy.deepcopy(config)
    warm.train.warm_start = config.train.warm_start or f"models:/{config.tracking.model_name}@{config.tracking.alias}"
    warm.seasons.seasons = config.refresh.warm_seasons
    seasons = season_numbers(warm)
    summary = {"inputs": inputs_with_store("merge new views", spark, warm)}
    if summary["inputs"].get("new_views") == 0 and not config.refresh.retrain_unchanged:
        summary["nothing_new"] = (
            f"the batch holds no view {tables.of(config, 'views').where} lacks: no new version, the alias stays "
            "(--retrain-unchanged true trains one anyway)"
        )
        log.info(summary["nothing_new"])
        return summary
    if config.refresh.compact:
        retention = config.refresh.vacuum_retention_hours
        merged = ("views", *(["pairs"] if "pairs" in walk_inputs(config) else []))  # appended to night after night
        summary["compact"] = timed("compact", compacted, spark, config, merged, retention)
    summary["sample"] = timed("sample", sample, spark, warm, seasons)
    summary["train"] = timed("train (warm start)", train_vectors, spark, warm, seasons, score_on_views=True)
    return summary
