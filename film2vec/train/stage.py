"""The training stage: the torch trainer (film2vec/train/) run over DIR/seasons, tracked in MLflow, its vectors
(with provisional vectors for unviewed assets) registered and written as candidate rows of their version,
served when they clear the floors (film2vec.serving.gate)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from film2vec import tables, task_values, tracking
from film2vec.config import Config, ConfigError
from film2vec.errors import InputError
from film2vec.evaluation.protocol import HeldOut, genre_precision_of_views, genre_sets
from film2vec.plots import plot_held_out_curve, plot_loss
from film2vec.seasons.sampler import held_out_rows, negatives_plan
from film2vec.seasons.stage import (
    SeasonFeed,
    held_out_views,
    sampler_settings,
    season_feed,
    season_mismatch,
    season_numbers,
    season_sampler_for,
    stops_on_held_out,
    views_on_driver,
    walk_inputs,
    walk_origins,
)
from film2vec.serving import ann, gate
from film2vec.serving.nearest import Vectors
from film2vec.serving.stage import (
    DRIVER_ASSETS,
    approximate_neighbours_table,
    neighbours_on_driver,
    neighbours_table,
    tuned_index,
)
from film2vec.storage import local_scratch
from film2vec.train.checkpoint import clear as clear_checkpoint
from film2vec.train.stopping import StopRule, Validation
from film2vec.train.trainer import StartingRows, TrainResult, train
from film2vec.train.warm import label_mean_vectors, median_cosine

log = logging.getLogger(__name__)
SEASON_MISMATCH_TAG = "film2vec.season_mismatch"  # on a run trained with --allow-season-mismatch: what differed
FIGURES_TAG = "film2vec.figures_from"  # run tag: "held-out split" (film2vec evaluate) or "all views"


@dataclass(frozen=True)
class WarmStart:
    """Where a warm-started run starts: the model's vectors of known assets with their Adagrad accumulators,
    label means for new ones (with empty accumulators: they learn at full rate)."""

    source: str  # the model's artifact URI, an alias resolved to its version
    known_rows: np.ndarray  # asset_idx of the assets the model has a trained vector of
    previous: np.ndarray  # those vectors
    previous_accumulators: np.ndarray  # and their accumulators
    label_rows: np.ndarray  # asset_idx of new assets started from their labels' mean vector
    label_vectors: np.ndarray
    new_assets: int  # assets the model does not know (label-started or random)

    def starting_rows(self) -> StartingRows:
        return StartingRows(
            np.concatenate((self.known_rows, self.label_rows)),
            np.concatenate((self.previous, self.label_vectors)),
            np.concatenate((self.previous_accumulators, np.zeros(len(self.label_rows)))),
        )

    def summary(self) -> dict:
        return {
            "from": self.source,
            "known_assets": len(self.known_rows),
            "new_assets": self.new_assets,
            "new_assets_started_from_labels": len(self.label_rows),
        }


def warm_start(config: Config, catalogue: pa.Table) -> WarmStart:
    """The starting vectors for `catalogue` (asset_idx order, with genres) from the model --warm-start names."""
    source = tracking.model_uri(config.train.warm_start)
    previous, optimiser_state = tracking.model_tables(source)
    previous = previous.filter(pc.equal(previous.column("source"), "views"))  # label-made vectors start afresh
    stored = Vectors.of_table(previous)
    vectors = stored.matrix
    if vectors.shape[1] != config.train.dim:
        raise ConfigError(
            f"flag --warm-start: {source} has vectors of dimension {vectors.shape[1]}, --dim is {config.train.dim}"
        )
    position = pd.Index(stored.ids.to_pandas()).get_indexer(catalogue.column("asset_id").to_pandas())
    known, new = np.flatnonzero(position >= 0), np.flatnonzero(position < 0)
    if known.size == 0:
        raise InputError(
            f"flag --warm-start: {source} has a vector for none of the {catalogue.num_rows} assets in "
            f"{tables.of(config, 'assets').where}"
        )
    genres = catalogue.column("genres").to_pylist()
    wanted = [genres[i] for i in new] if config.train.warm_new_assets == "labels" else [None] * len(new)
    from_labels, found = label_mean_vectors(vectors[position[known]], [genres[i] for i in known], wanted)
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
    unviewed_table = tables.of(config, "unviewed")
    if not config.train.cold_start or not unviewed_table.exists(spark):
        return None
    unviewed = unviewed_table.read(spark).select("asset_id", "genres").toArrow()
    vectors, found = label_mean_vectors(
        Vectors.of_table(trained).matrix, trained_genres, unviewed.column("genres").to_pylist()
    )
    ids = unviewed.column("asset_id").filter(pa.array(found)).cast(trained.schema.field("asset_id").type)
    return tables.embeddings_table(ids, vectors[found], "metadata")


def _genre_precision_on_views(catalogue: pa.Table, vectors: np.ndarray) -> float:
    """GenreP@10 with every view as a train view: agreement of the neighbours with the metadata, no held-out."""
    views = catalogue.column("views").to_numpy().astype(np.int64)
    return genre_precision_of_views(vectors, views, genre_sets(catalogue.column("genres").to_pylist()))


def identity(catalogue: pa.Table) -> str:
    """A digest of the catalogue a run trains (each asset's id and views, in asset_idx order): the same for the
    same events ingested again, another for other events. A checkpoint is resumed only by a run of the same."""
    digest = hashlib.sha256(json.dumps(catalogue.column("asset_id").to_pylist()).encode())
    digest.update(catalogue.column("views").to_numpy().astype(np.int64).tobytes())
    return digest.hexdigest()


def held_out_validation(spark: SparkSession, config: Config, catalogue: pa.Table) -> Validation:
    """The slice the seasons were drawn without (seasons.held_out_views) with its users' other views, collected
    to score each season's vectors on."""
    users, seed = config.seasons.validation_users, config.seed
    held = views_on_driver(config)
    if held is not None:  # picked on the driver as Spark picks it
        held_out = held_out_rows(held, users, seed)
        user_id = held.column("user_id").to_numpy()
        of_slice = np.isin(user_id, user_id[held_out])
        rows = held.filter(pa.array(of_slice)).append_column("held_out", pa.array(held_out[of_slice]))
    else:
        views = tables.of(config, "views").read(spark).select("user_id", "asset_idx", "viewed_at")
        slice_rows = held_out_views(views, users, seed).withColumn("held_out", F.lit(True))
        rows = (
            views.join(slice_rows.select("user_id"), "user_id", "left_semi")
            .join(slice_rows, ["user_id", "asset_idx"], "left")
            .select("user_id", "asset_idx", F.coalesce("held_out", F.lit(False)).alias("held_out"))
            .toArrow()
        )
    rows = rows.sort_by([("user_id", "ascending"), ("asset_idx", "ascending")])  # however they were collected
    user = pd.factorize(rows.column("user_id").to_pandas())[0]
    return Validation.of_slice(
        user,
        rows.column("asset_idx").to_numpy(),
        rows.column("held_out").to_numpy(zero_copy_only=False),
        catalogue.num_rows,
        catalogue.column("views").to_numpy(),
        genre_sets(catalogue.column("genres").to_pylist()),
    )


def slice_added_back(spark: SparkSession, config: Config, seasons: Iterable[int]) -> Callable[[int], int]:
    """What draws the season that trains the held-out slice into the final vectors once the run has stopped:
    a walk over every view. Its views are often a user's latest, the nearest in time to what they watch next,
    so the vectors keep them; one more season (not a retrain) costs the least."""

    def draw(season: int) -> int:
        if isinstance(seasons, SeasonFeed):
            seasons.close()  # the season it drew ahead is replaced, not trained
        sampler = season_sampler_for(spark, config, hold_out=False)
        try:
            sampler.write(season, config.out("seasons"))
        finally:
            sampler.release()
        log.info("season %d: the held-out slice added back (a walk over every view)", season)
        return season

    return draw


def train_vectors(
    spark: SparkSession,
    config: Config,
    seasons: Iterable[int] | None = None,
    held_out: HeldOut | None = None,
    score_on_views: bool = False,
) -> dict:
    """Train on the seasons, log the run to MLflow, register the model, then write its vectors and each asset's
    --top-k nearest as the registered version's rows of DIR/candidate_embeddings and DIR/candidate_neighbours,
    and publish the version (the task value model_version in a Databricks job, film2vec.task_values).

    `seasons` defaults to all configured ones (--warm-seasons of them when warm-starting); under --seasons 0
    it is DIR/seasons's seasons drawn by this configuration, in order, with any further ones drawn here one
    ahead of the trainer, until the held-out slice stops the run. `film2vec run` passes a SeasonFeed that
    yields each season once it is written. Each finished season is checkpointed in DIR/checkpoints (a local
    output folder), so a killed run started again resumes after its last finished season; the checkpoint
    goes once the run is written. With `held_out`, the protocol's figures of the new vectors are logged to
    the run and returned; without it, GenreP@10 over all views is, with `score_on_views`, a GenreP floor or a
    deferred alias (--move-alias by_promote). The version is served (its rows become DIR/embeddings and
    DIR/neighbours, the alias points at it) only when the figures clear the configured floors, or later by
    `film2vec promote`.

    Example::

        from film2vec import config, spark
        from film2vec.train.stage import train_vectors
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        train_vectors(spark.get_spark(settings.spark), settings)
    """
    with contextlib.ExitStack() as stack:
        if seasons is None and stops_on_held_out(config):
            seasons = stack.enter_context(season_feed(spark, config, season_numbers(config), keep_matching=True))
        return _train_on(spark, config, seasons, held_out, score_on_views)


@dataclass
class Prepared:
    """What training needs before its first step: the configuration (a warm start's learning rate in it), the
    catalogue, the starting rows, the seasons checked against this configuration, the held-out slice."""

    config: Config
    catalogue: pa.Table
    with_neighbours: DataFrame  # asset_idx of the assets that get a vector and neighbours
    warm: WarmStart | None
    seasons: Iterable[int]
    mismatch: str | None
    stopping: bool
    validation: Validation | None


def _prepared(spark: SparkSession, config: Config, seasons: Iterable[int] | None) -> Prepared:
    """The catalogue and the assets to publish, the warm start, the seasons (refused when drawn by other
    settings, unless --allow-season-mismatch) and the held-out slice under --seasons 0."""
    assets_table = tables.of(config, "assets")
    assets = assets_table.read(spark)
    trained = walk_origins(spark, config)
    catalogue = assets_table.read_arrow(spark, ["asset_idx", "asset_id", "views", "genres"])
    catalogue = catalogue.sort_by("asset_idx")
    most_viewers = pc.max(catalogue.column("views")).as_py() or 0
    if most_viewers < config.train.min_views:
        raise InputError(
            f"flag --min-views {config.train.min_views}: no asset has that many viewers (the most viewed has "
            f"{most_viewers}), so no vector would be published; lower it"
        )
    with_neighbours = (
        assets.where(F.col("views") >= config.train.min_views)
        .join(trained, "asset_id", "left_semi")
        .select("asset_idx")
        .orderBy("asset_idx")
    )
    warm = warm_start(config, catalogue) if config.train.warm_start else None
    if warm:
        config = copy.deepcopy(config)
        config.train.warm_start, config.train.learning_rate = warm.source, config.train.warm_learning_rate
    seasons = seasons if seasons is not None else season_numbers(config)
    mismatch = None
    if not isinstance(seasons, SeasonFeed):  # a feed's seasons are drawn now, by this configuration
        seasons = list(seasons)
        mismatch, missing = season_mismatch(spark, config, seasons)
        if mismatch and (missing or not config.train.allow_season_mismatch):  # no flag trains on missing rows
            raise InputError(mismatch)
        if mismatch:
            log.warning("training anyway (--allow-season-mismatch): %s", mismatch)
    stopping = stops_on_held_out(config)
    validation = held_out_validation(spark, config, catalogue) if stopping else None
    return Prepared(config, catalogue, with_neighbours, warm, seasons, mismatch, stopping, validation)


def _volume_logged(result: TrainResult, validation: Validation | None, folder: Path) -> dict:
    """What the run trained (seasons, samples, why it stopped, the held-out curve), logged to the MLflow run
    with the step that trained it."""
    volume = {
        "seasons": result.seasons,
        "samples": sum(report.samples for report in result.history),
        "stopped": result.stopped or f"trained the {len(result.seasons)} seasons asked for",
    }
    if validation is not None:
        volume["held_out_users"] = validation.users
        volume["held_out_added_back_in_season"] = result.seasons[-1]
        volume["held_out_figures"] = result.curve
        for season, figures in enumerate(result.curve):
            mlflow.log_metrics({f"held_out_{name}": value for name, value in figures.items()}, step=season)
        plot_held_out_curve(result.curve, folder / "held_out.png")
        mlflow.log_artifact(str(folder / "held_out.png"), "plots")
    mlflow.log_metrics({"seasons_trained": len(result.seasons), "samples_trained": volume["samples"]})
    mlflow.set_tag("film2vec.stopped", volume["stopped"])
    mlflow.set_tags({f"film2vec.step_{name}": value for name, value in result.step.items() if value is not None})
    return volume


def _published_embeddings(
    spark: SparkSession, config: Config, catalogue: pa.Table, vectors: np.ndarray, rows: np.ndarray
) -> tuple[pa.Table, pa.Table | None]:
    """The embeddings rows of the assets that get a vector (`rows`), with the provisional vectors of unviewed
    assets under --cold-start (also returned apart, None when off)."""
    embeddings = tables.embeddings_table(catalogue.column("asset_id").take(rows), vectors[rows])
    genres = catalogue.column("genres").to_pylist()
    provisional = _provisional_vectors(spark, config, embeddings, [genres[row] for row in rows])
    if provisional is not None:
        embeddings = pa.concat_tables((embeddings, provisional))
    return embeddings, provisional


def _train_on(
    spark: SparkSession, config: Config, seasons: Iterable[int] | None, held_out: HeldOut | None, score_on_views: bool
) -> dict:
    """train_vectors on the given seasons (all configured ones when None): prepare, train, judge, register,
    publish, each a function below."""
    store = tracking.use_store(config.data.out)
    prepared = _prepared(spark, config, seasons)
    config, catalogue, warm = prepared.config, prepared.catalogue, prepared.warm
    checkpoints = local_scratch(config.out("checkpoints"))  # torch.save's rename is atomic only on a local disk
    with (
        mlflow.start_run(experiment_id=tracking.experiment_id(config.tracking.experiment, store)) as run,
        tempfile.TemporaryDirectory() as tmp,
        ThreadPoolExecutor(1, thread_name_prefix="film2vec-beside-training") as pool,
    ):
        # a Spark job while the trainer starts, not before it
        neighboured = pool.submit(prepared.with_neighbours.toArrow)
        mlflow.log_params(tracking.flat_params(config))
        result = _trained(spark, prepared, checkpoints)
        volume = _volume_logged(result, prepared.validation, Path(tmp))
        versions = {table: tables.of(config, table).version(spark) for table in (*walk_inputs(config), "seasons")}
        tracking.log_input_tables({table: (tables.of(config, table).where, v) for table, v in versions.items()})
        if prepared.mismatch:
            mlflow.set_tag(SEASON_MISMATCH_TAG, prepared.mismatch)
        rows = neighboured.result().column("asset_idx").to_numpy()
        embeddings, provisional = _published_embeddings(spark, config, catalogue, result.vectors, rows)
        search = _neighbour_search(config, embeddings, pool)
        figures = _figures(catalogue, result.vectors, rows, search.embeddings, config, held_out, score_on_views)
        extra = {
            "provisional_vectors": provisional.num_rows if provisional is not None else 0,
            "neighbour_search": search.described,
        }
        if warm:
            kept = np.isin(warm.known_rows, rows)
            extra["warm_start"] = {
                **warm.summary(),
                "median_cosine_to_previous": median_cosine(warm.previous[kept], result.vectors[warm.known_rows[kept]]),
            }
            mlflow.log_metric("warm_start_median_cosine", extra["warm_start"]["median_cosine_to_previous"])
        mlflow.log_metric("provisional_vectors", extra["provisional_vectors"])
        floors, decision = _alias_decision(figures, config, held_out)
        registered = _registered(config, catalogue, result, rows, search, figures, Path(tmp))
        version = int(registered.version)
        record = {
            gate.EMBEDDINGS_RECORD: {
                "seasons": result.seasons,
                "inputs": versions,
                "model_version": version,
                "run_id": run.info.run_id,
                "season_mismatch": prepared.mismatch,
            }
        }
        _published(spark, config, search, version, record, run.info.run_id, decision)
        task_values.publish(gate.EVALUATE_TASK if held_out else gate.TRAIN_TASK, gate.VERSION_KEY, version)
        mlflow.log_dict(
            {"step": result.step, "assets": len(rows), "resumed_seasons": result.resumed_seasons, **extra},
            "training.json",
        )
    if checkpoints:
        clear_checkpoint(checkpoints)
    served = decision.moved
    return {
        "model_version": version,
        "embeddings": tables.of(config, "embeddings" if served else gate.candidate("embeddings")).where,
        "assets_with_vectors": len(rows),
        "volume": volume,
        "step": result.step,
        **extra,
        "resumed_seasons": result.resumed_seasons,
        **({"season_mismatch": prepared.mismatch} if prepared.mismatch else {}),
        **({"figures": figures} if figures else {}),
        "neighbours": tables.of(config, "neighbours" if served else gate.candidate("neighbours")).where,
        "served": served,
        "run_id": run.info.run_id,
        "model": registered.uri,
        "model_id": registered.model_id,
        "alias": {
            "name": config.tracking.alias,
            "moved": decision.moved,
            "reason": decision.reason,
            "figures_from": "held-out split" if held_out else "all views",
            "floors": {"cleared": floors.moved, "reason": floors.reason},  # `--fail-on-floors` exits 5 unless cleared
        },
        "tracking_uri": store.uri,
        "mlflow_ui": store.ui_command,
    }


def _trained(spark: SparkSession, prepared: Prepared, checkpoints: str | None) -> TrainResult:
    """The trainer run over the prepared seasons, each epoch logged to MLflow and the log."""
    config, catalogue, warm, stopping = prepared.config, prepared.catalogue, prepared.warm, prepared.stopping

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

    return train(
        config.out("seasons"),
        prepared.seasons,
        catalogue.num_rows,
        config.train,
        config.seed,
        log_epoch,
        negatives=negatives_plan(config.seasons, catalogue.column("views").to_numpy()),
        n_seasons=len(season_numbers(config)),
        checkpoints=checkpoints,
        start=warm.starting_rows() if warm else None,
        validation=prepared.validation,
        stop_rule=StopRule(config.seasons.min_seasons, config.seasons.max_seasons, config.seasons.gain_standard_errors)
        if stopping
        else None,
        added_back=slice_added_back(spark, config, prepared.seasons) if stopping else None,
        drawn_from={"settings": sampler_settings(config.seasons, config.seed), "catalogue": identity(catalogue)},
    )


@dataclass
class NeighbourSearch:
    """How the published vectors' neighbours are found: an HNSW index past --ann-from-assets (the embeddings
    then in asset_id order, its positions), else exactly, on the driver (`on_driver`, found while MLflow logs
    the model) or by Spark."""

    embeddings: pa.Table
    index: object | None = None
    recall: float | None = None
    on_driver: Future | None = None

    @property
    def described(self) -> str:
        if self.index is None:
            return "exact"
        return f"approximate: HNSW, search depth {self.index.hnsw.efSearch}, recall {self.recall:.3f} on sampled assets"


def _neighbour_search(config: Config, embeddings: pa.Table, pool: ThreadPoolExecutor) -> NeighbourSearch:
    """The search the catalogue's size calls for; a small catalogue's neighbours start on the driver now (numpy,
    off the GIL)."""
    settings = config.tracking
    if embeddings.num_rows >= settings.ann_from_assets:
        embeddings = embeddings.sort_by("asset_id")
        index, recall = tuned_index(Vectors.of_table(embeddings).unit(), settings.top_k, settings.ann_recall)
        mlflow.log_metric("neighbours_sampled_recall", recall)
        return NeighbourSearch(embeddings, index, recall)
    if embeddings.num_rows <= DRIVER_ASSETS:
        return NeighbourSearch(embeddings, on_driver=pool.submit(neighbours_on_driver, embeddings, settings.top_k))
    return NeighbourSearch(embeddings)


def _figures(
    catalogue: pa.Table,
    vectors: np.ndarray,
    rows: np.ndarray,
    embeddings: pa.Table,
    config: Config,
    held_out: HeldOut | None,
    score_on_views: bool,
) -> dict:
    """The figures the alias is decided on: the protocol's on the held-out split, else GenreP@10 over all views
    when a floor, a deferred alias or a refresh asks for it."""
    figures = held_out.score(embeddings) if held_out else {}
    deferred = config.tracking.move_alias == "by_promote"
    if not held_out and (score_on_views or deferred or config.tracking.alias_floor_genre_p > 0):
        published = np.zeros_like(vectors)
        published[rows] = vectors[rows]
        figures["genre_p_at_10"] = _genre_precision_on_views(catalogue, published)
    return figures


def _alias_decision(
    figures: dict, config: Config, held_out: HeldOut | None
) -> tuple[tracking.AliasDecision, tracking.AliasDecision]:
    """Whether the figures clear the floors, and whether the alias moves now (not when `film2vec promote` is to
    move it), both tagged on the run."""
    floors = tracking.alias_decision(figures, config.tracking)
    decision = floors
    if config.tracking.move_alias == "by_promote":
        decision = tracking.AliasDecision(False, "left to `film2vec validate` and `film2vec promote`")
    figures_from = "held-out split" if held_out else "all views"
    mlflow.set_tags(
        {"alias_moved": str(decision.moved).lower(), "alias_decision": decision.reason, FIGURES_TAG: figures_from}
    )
    return floors, decision


def _registered(
    config: Config,
    catalogue: pa.Table,
    result: TrainResult,
    rows: np.ndarray,
    search: NeighbourSearch,
    figures: dict,
    folder: Path,
) -> tracking.RegisteredModel:
    """The loss plot logged and the model registered: the published vectors, the optimiser state a warm start
    resumes, the figures, the index when there is one."""
    plot_loss(result.history, folder / "loss.png")
    mlflow.log_artifact(str(folder / "loss.png"), "plots")
    optimiser_state = pa.table(
        {"asset_id": catalogue.column("asset_id").take(rows), "accumulator": result.accumulators[rows]}
    )
    return tracking.log_similar_assets_model(
        search.embeddings, folder, config.tracking, False, optimiser_state, figures, search.index
    )


def _published(
    spark: SparkSession,
    config: Config,
    search: NeighbourSearch,
    version: int,
    record: dict,
    run_id: str,
    decision: tracking.AliasDecision,
) -> None:
    """The version's vectors and neighbours written as its candidate rows, then served when the alias moves."""
    embeddings = search.embeddings
    written = embeddings.append_column("run_id", pa.array([run_id] * embeddings.num_rows, pa.string()))
    gate.write_candidate(config, written, "embeddings", version, record)
    if search.on_driver is not None:
        neighbours = search.on_driver.result()
    elif search.index is not None:
        neighbours = approximate_neighbours_table(
            spark, embeddings.column("asset_id"), ann.index_bytes(search.index), config.tracking.top_k
        )
    else:
        embedded = gate.candidate_rows(spark, config, "embeddings", version).select("asset_id", "vector")
        neighbours = neighbours_table(embedded, config.tracking.top_k)
    gate.write_candidate(config, neighbours, "neighbours", version, record)
    if decision.moved:
        gate.serve(spark, config, version, decision.reason)
