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

import copy
import json
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from film2vec import tracking
from film2vec.config import Config
from film2vec.conflicts import committing
from film2vec.evaluate import Split, split_views
from film2vec.evaluate import evaluate as evaluate_vectors
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
from film2vec.seasons import SeasonFeed, SeasonSampler, season_sampler
from film2vec.synthetic import generate_catalogue
from film2vec.train.checkpoint import clear as clear_checkpoint
from film2vec.train.trainer import train


def _write(frame: DataFrame, path: str, **options: str) -> None:
    """Replace the Delta table at `path` in one commit; ConcurrentWriteError when another job commits to it too."""
    with committing(path):
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


def season_sampler_for(spark: SparkSession, config: Config) -> SeasonSampler:
    """The configured walk over DIR/pairs (co-view walk) or DIR/views (bipartite walk)."""
    assets = _read(spark, config.out("assets"), "pairs")
    if config.seasons.walk == "coview":
        return season_sampler(config.seasons, config.seed, assets, pairs=_read(spark, config.out("pairs"), "pairs"))
    return season_sampler(config.seasons, config.seed, assets, views=_read(spark, config.out("views"), "pairs"))


def _seasons_written(spark: SparkSession, config: Config, seasons: list[int]) -> dict:
    written = _read(spark, config.out("seasons"), "sample").where(F.col("season").isin(seasons))
    return {"seasons": config.out("seasons"), "season_numbers": seasons, "samples": written.count()}


def sample(spark: SparkSession, config: Config, seasons: range | None = None) -> dict:
    """Write the configured seasons of samples to DIR/seasons, each replacing only itself."""
    seasons = list(seasons if seasons is not None else range(config.seasons.seasons))
    sampler = season_sampler_for(spark, config)
    try:
        for season in seasons:
            sampler.write(season, config.out("seasons"))
    finally:
        sampler.release()
    return _seasons_written(spark, config, seasons)


def train_vectors(
    spark: SparkSession, config: Config, seasons: Iterable[int] | None = None, held_out: HeldOut | None = None
) -> dict:
    """Train on the seasons, log the run to MLflow, write DIR/embeddings and register the model.

    `seasons` defaults to all configured ones; `film2vec run` passes a SeasonFeed that yields each season
    once it is written. Each finished season is checkpointed in DIR/checkpoints (a local output folder), so
    a killed run started again resumes after its last finished season; the checkpoint goes once the run is
    written. With `held_out`, the protocol's figures of the new vectors are logged to the run and returned.
    """
    assets = _read(spark, config.out("assets"), "pairs").orderBy("asset_idx")
    trained = _read(spark, config.out("pairs"), "pairs").select(F.col("asset_a").alias("asset_id")).distinct()
    catalogue = assets.select("asset_idx", "asset_id").toArrow()
    with_neighbours = (
        assets.where(F.col("views") >= config.train.min_views)
        .join(trained, "asset_id", "left_semi")
        .select("asset_idx")
        .toArrow()
    )
    store = tracking.use_store(config.data.out)
    seasons = seasons if seasons is not None else range(config.seasons.seasons)
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
            print(
                f"season {report.season} epoch {report.epoch + 1}: loss {report.loss:.4f}, "
                f"{report.samples_per_second:,.0f} samples/s",
                flush=True,
            )

        result = train(
            config.out("seasons"),
            seasons,
            catalogue.num_rows,
            config.train,
            config.seed,
            log_epoch,
            n_seasons=config.seasons.seasons,
            checkpoints=checkpoints,
        )
        rows = with_neighbours.column("asset_idx").to_numpy()
        embeddings = tracking.embeddings_table(catalogue.column("asset_id").take(rows), result.vectors[rows])
        _write(spark.createDataFrame(embeddings), config.out("embeddings"))
        figures = held_out.score(embeddings) if held_out else {}
        mlflow.log_metrics(figures)
        plot_loss(result.history, Path(tmp) / "loss.png")
        mlflow.log_artifact(str(Path(tmp) / "loss.png"), "plots")
        version = tracking.log_similar_assets_model(embeddings, Path(tmp), config.tracking)
        mlflow.log_dict(
            {"device": result.device, "assets": len(rows), "resumed_seasons": result.resumed_seasons}, "training.json"
        )
    if checkpoints:
        clear_checkpoint(checkpoints)
    return {
        "embeddings": config.out("embeddings"),
        "assets_with_vectors": len(rows),
        "resumed_seasons": result.resumed_seasons,
        **({"figures": figures} if held_out else {}),
        "run_id": run.info.run_id,
        "model": f"models:/{config.tracking.model_name}@{config.tracking.alias} (version {version})",
        "tracking_uri": store.uri,
        "mlflow_ui": store.ui_command,
    }


def _timed(stage, *arguments, **options) -> dict:
    started = time.perf_counter()
    summary = stage(*arguments, **options)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


@dataclass(frozen=True)
class HeldOut:
    """The protocol's split of an events table, in the asset codes of its whole catalogue."""

    split: Split
    asset_ids: pa.Array  # asset id of each code
    genres: list[set[str]]  # genres of each code

    def score(self, embeddings: pa.Table) -> dict[str, float]:
        """The protocol's figures of an (asset_id, vector) table; catalogue assets it lacks have no vector."""
        ids = pd.Index(self.asset_ids.to_pandas())
        rows = ids.get_indexer(embeddings.column("asset_id").to_pandas())
        known = rows >= 0
        if not known.any():
            raise InputError("the embeddings share no asset_id with the events' catalogue; are they of these events?")
        found = np.stack(embeddings.column("vector").to_numpy(zero_copy_only=False)[known])
        vectors = np.zeros((len(ids), found.shape[1]))
        vectors[rows[known]] = found
        return evaluate_vectors(vectors, self.split, self.genres)


def split_events(spark: SparkSession, config: Config) -> tuple[HeldOut, dict[str, pa.Table]]:
    """The configured events split per the protocol: the held-out split, and the train views, test views
    and metadata as Arrow tables ready to be written as events.

    Views are the validated ones (one per user and asset, at its earliest time); a view without a time
    is ordered by asset id alone. The split is a driver-side numpy function, so the views must fit there.
    """
    events, metadata = events_source(spark, config)
    found = ingest(spark, events, metadata, config.data.id_type)
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
    table instead of training. The figures are under "figures".
    """
    held_out, tables = split_events(spark, config)
    summary: dict = {"users_evaluated": int(np.unique(held_out.split.test_user).size)}
    if config.evaluate.embeddings:
        embeddings = _read(spark, config.evaluate.embeddings, "train").select("asset_id", "vector").toArrow()
        return {**summary, "embeddings": config.evaluate.embeddings, "figures": held_out.score(embeddings)}
    for name, table in tables.items():
        _write(spark.createDataFrame(table), config.out(f"split/{name}"))
    on_train = copy.deepcopy(config)
    on_train.data.events, on_train.data.metadata = config.out("split/train"), config.out("split/metadata")
    summary["pairs"] = count_pairs(spark, on_train)
    summary["sample"] = sample(spark, on_train)
    summary["train"] = train_vectors(spark, on_train, held_out=held_out)
    return {**summary, "split": config.out("split"), "figures": summary["train"]["figures"]}


def run(spark: SparkSession, config: Config) -> dict:
    """The whole pipeline: ingest and pairs, seasons, training, registration; each stage timed.

    With pipelined_seasons, season k + 1 is sampled while the trainer trains on season k; the seconds the
    trainer waited for samples go to MLflow (`waited_for_samples_seconds`, step = season) and the summary.
    """
    summary = {"pairs": _timed(count_pairs, spark, config)}
    if not config.seasons.pipelined_seasons:
        summary["sample"] = _timed(sample, spark, config)
        summary["train"] = _timed(train_vectors, spark, config)
        return summary
    seasons = list(range(config.seasons.seasons))
    sampler = season_sampler_for(spark, config)

    def log_wait(season: int, seconds: float) -> None:
        mlflow.log_metric("waited_for_samples_seconds", seconds, step=season)

    try:
        with SeasonFeed(lambda season: sampler.write(season, config.out("seasons")), seasons, log_wait) as feed:
            trained = _timed(train_vectors, spark, config, seasons=feed)
    finally:
        sampler.release()
    trained["waited_for_samples_seconds"] = round(sum(feed.waited.values()), 1)
    mlflow.MlflowClient().log_metric(
        trained["run_id"], "waited_for_samples_seconds_total", trained["waited_for_samples_seconds"]
    )
    summary["sample"] = {**_seasons_written(spark, config, seasons), "seconds": round(feed.sampling_seconds, 1)}
    summary["train"] = trained
    return summary


def describe(summary: dict) -> str:
    """A summary as indented JSON for the terminal."""
    return json.dumps(summary, indent=2, default=str)
