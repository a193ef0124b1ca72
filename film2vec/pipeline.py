"""The stages end to end, each reading and writing Delta tables under the output folder.

    DIR/synthetic/{events,assets}   the generated catalogue (when no events are given)
    DIR/views      clean views: user_id, asset_id, viewed_at, asset_idx (one row per user and asset)
    DIR/assets     asset_idx, asset_id, views, title, genres
    DIR/rejects    rows set aside: reason, line, source
    DIR/pairs      asset_a, asset_b, co_views
    DIR/seasons    season, origin, target, negatives (asset indices), partitioned by season
    DIR/embeddings asset_id, vector
Each function returns a summary dict of what it wrote; the CLI prints it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import mlflow
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from film2vec import tracking
from film2vec.config import Config
from film2vec.events import InputError, ingest
from film2vec.pairs import (
    cap_views,
    check_budget,
    estimate_pairs,
    gram_buckets,
    pairs_by_gram,
    pairs_by_join,
    sparsify,
)
from film2vec.plots import plot_loss
from film2vec.seasons import neighbour_lists, sample_season, write_season
from film2vec.synthetic import generate_catalogue
from film2vec.train.trainer import train


def _write(frame: DataFrame, path: str, **options: str) -> None:
    frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").options(**options).save(path)


def _read(spark: SparkSession, path: str, stage: str) -> DataFrame:
    if not Path(path).exists() and "://" not in path:
        raise InputError(f"{path} not found: run `film2vec {stage}` (or `film2vec run`) with the same --out first")
    return spark.read.format("delta").load(path)


def generate(spark: SparkSession, config: Config) -> dict:
    """Write the synthetic catalogue's events and metadata as Delta tables under DIR/synthetic."""
    catalogue = generate_catalogue(config.synthetic, config.seed)
    events, assets = config.out("synthetic/events"), config.out("synthetic/assets")
    _write(spark.createDataFrame(catalogue.events_table()), events)
    _write(spark.createDataFrame(catalogue.assets_table()), assets)
    return {
        "events": events,
        "metadata": assets,
        "views": len(catalogue.user_id),
        "users": int(config.synthetic.users),
        "assets": len(catalogue.catalogue_ids),
        "genres": len(catalogue.genre_names),
    }


def events_source(spark: SparkSession, config: Config) -> tuple[str, str | None]:
    """The events (and metadata) to use: the configured ones, or the synthetic catalogue made on demand."""
    if config.data.events:
        return config.data.events, config.data.metadata
    events, metadata = config.out("synthetic/events"), config.out("synthetic/assets")
    if not (Path(events) / "_delta_log").is_dir():
        generate(spark, config)
    return events, metadata


def prepare_views(spark: SparkSession, config: Config) -> dict:
    """Validate the events into DIR/views, DIR/assets and DIR/rejects; stop when no view is valid."""
    events, metadata = events_source(spark, config)
    found = ingest(spark, events, metadata, config.data.id_type)
    _write(found.rejects, config.out("rejects"))
    summary = dict(found.summary)
    if summary["valid"] == 0:
        raise InputError(
            f"events at {events}: none of the {summary['rows']} rows is a valid view "
            f"(rejected by reason: {summary['rejected_by_reason']}); see {config.out('rejects')}"
        )
    _write(found.assets, config.out("assets"))
    assets = spark.read.format("delta").load(config.out("assets"))
    _write(found.views.join(assets.select("asset_id", "asset_idx"), "asset_id"), config.out("views"))
    views = spark.read.format("delta").load(config.out("views"))
    counts = views.agg(F.count("*").alias("views"), F.countDistinct("user_id").alias("users")).first()
    summary.update(
        views=counts["views"],
        users=counts["users"],
        assets=assets.count(),
        duplicates_merged=summary["valid"] - counts["views"],
    )
    return summary


def count_pairs(spark: SparkSession, config: Config) -> dict:
    """Ingest the events, estimate the cost (stopping when over budget), then write the co-view table DIR/pairs."""
    summary = {"ingest": prepare_views(spark, config)}
    settings = config.pairs
    views = spark.read.format("delta").load(config.out("views"))
    if settings.max_user_views:
        views = cap_views(views, settings.max_user_views, config.seed)
    estimate = estimate_pairs(views)
    summary["estimate"] = estimate.summary()
    print(
        f"pairs: about {estimate.raw_pairs:,} raw pairs from {estimate.users:,} users; the table has at most "
        f"{estimate.max_rows:,} rows ({estimate.max_bytes / 1e9:.2f} GB uncompressed)",
        flush=True,
    )
    check_budget(estimate, settings.pair_budget, views, config.out("views"))
    weighted = settings.user_weighting == "inverse"
    if settings.pair_method == "join":
        assets = spark.read.format("delta").load(config.out("assets"))
        pairs = pairs_by_join(views, assets, weighted)
    else:
        partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
        buckets = gram_buckets(estimate, partitions, settings.gram_block_pairs)
        pairs = pairs_by_gram(views, estimate.n_assets, buckets, weighted, settings.gram_block_pairs)
    sparse = settings.max_neighbours > 0 or settings.min_co_views > 0
    if sparse:
        pairs = pairs.persist()
        full = pairs.agg(F.count("*").alias("rows"), F.sum("co_views").alias("weight")).first()
        pairs_kept = sparsify(pairs, settings.max_neighbours, settings.min_co_views)
    _write(pairs_kept if sparse else pairs, config.out("pairs"))
    if sparse:
        pairs.unpersist()
    written = spark.read.format("delta").load(config.out("pairs"))
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
        pairs=config.out("pairs"), pair_rows=stats["pairs"], assets_with_neighbours=stats["assets_with_neighbours"]
    )
    if sparse:
        summary.update(
            pair_rows_before_sparsifying=full["rows"],
            share_of_edges_kept=round(stats["pairs"] / full["rows"], 4),
            share_of_weight_kept=round(float(stats["weight"]) / float(full["weight"]), 4),
        )
    return summary


def sample(spark: SparkSession, config: Config, seasons: range | None = None) -> dict:
    """Write the configured seasons of samples to DIR/seasons, each replacing only itself."""
    seasons = seasons if seasons is not None else range(config.seasons.seasons)
    assets = _read(spark, config.out("assets"), "pairs")
    pairs = _read(spark, config.out("pairs"), "pairs")
    n_assets = assets.count()
    if n_assets < 3:
        raise InputError(f"{config.out('assets')}: {n_assets} assets; negatives need at least 3 in the catalogue")
    neighbours = neighbour_lists(pairs, assets, config.seasons.sample_partitions).persist()
    for season in seasons:
        write_season(
            sample_season(neighbours, season, config.seed, n_assets, config.seasons), config.out("seasons"), season
        )
    neighbours.unpersist()
    written = _read(spark, config.out("seasons"), "sample").where(F.col("season").isin(list(seasons)))
    return {"seasons": config.out("seasons"), "season_numbers": list(seasons), "samples": written.count()}


def train_vectors(spark: SparkSession, config: Config) -> dict:
    """Train on the seasons, log the run to MLflow, write DIR/embeddings and register the model."""
    assets = _read(spark, config.out("assets"), "pairs").orderBy("asset_idx")
    trained = _read(spark, config.out("pairs"), "pairs").select(F.col("asset_a").alias("asset_id")).distinct()
    catalogue = assets.select("asset_idx", "asset_id").toArrow()
    with_neighbours = assets.join(trained, "asset_id", "left_semi").select("asset_idx").toArrow()
    store = tracking.use_store(config.data.out)
    seasons = range(config.seasons.seasons)
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
            print(
                f"season {report.season} epoch {report.epoch + 1}: loss {report.loss:.4f}, "
                f"{report.samples_per_second:,.0f} samples/s",
                flush=True,
            )

        result = train(config.out("seasons"), seasons, catalogue.num_rows, config.train, config.seed, log_epoch)
        rows = with_neighbours.column("asset_idx").to_numpy()
        embeddings = tracking.embeddings_table(catalogue.column("asset_id").take(rows), result.vectors[rows])
        _write(spark.createDataFrame(embeddings), config.out("embeddings"))
        plot_loss(result.history, Path(tmp) / "loss.png")
        mlflow.log_artifact(str(Path(tmp) / "loss.png"), "plots")
        version = tracking.log_similar_assets_model(embeddings, Path(tmp), config.tracking)
        mlflow.log_dict({"device": result.device, "assets": len(rows)}, "training.json")
    return {
        "embeddings": config.out("embeddings"),
        "assets_with_vectors": len(rows),
        "run_id": run.info.run_id,
        "model": f"models:/{config.tracking.model_name}@{config.tracking.alias} (version {version})",
        "tracking_uri": store.uri,
        "mlflow_ui": store.ui_command,
    }


def run(spark: SparkSession, config: Config) -> dict:
    """The whole pipeline: ingest and pairs, seasons, training, registration; each stage timed."""
    summary = {}
    for name, stage in (("pairs", count_pairs), ("sample", sample), ("train", train_vectors)):
        started = time.perf_counter()
        summary[name] = stage(spark, config)
        summary[name]["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def describe(summary: dict) -> str:
    """A summary as indented JSON for the terminal."""
    return json.dumps(summary, indent=2, default=str)
