"""The evaluation stage: the protocol of film2vec/evaluation/protocol.py run on a held-out split of the events, for
film2vec's vectors and the Spark ALS baseline."""

from __future__ import annotations

import copy
import logging

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import SparkSession

from film2vec import tables
from film2vec.config import Config
from film2vec.errors import InputError
from film2vec.evaluation.baselines import fit_als
from film2vec.evaluation.protocol import HeldOut, genre_sets, split_views
from film2vec.ingest.readers import ingest_source, read_input
from film2vec.ingest.stage import events_source
from film2vec.inputs import inputs_with_store
from film2vec.seasons.stage import sample
from film2vec.serving import gate
from film2vec.timing import Stopwatch, timed
from film2vec.train.stage import train_vectors

log = logging.getLogger(__name__)


def split_events(spark: SparkSession, config: Config) -> tuple[HeldOut, dict[str, pa.Table]]:
    """The configured events split per the protocol: the held-out split, and the train views, test views
    and metadata as Arrow tables ready to be written as events.

    Views are the validated ones (one per user and asset, at its earliest time); a view without a time
    is ordered by asset id alone. The split is a driver-side numpy function, so the views must fit there.
    """
    source = events_source(spark, config)
    found = ingest_source(spark, source)
    assets = found.assets.orderBy("asset_idx").select("asset_id", "title", "genres").toArrow()
    views = (
        found.views.join(found.assets.select("asset_id", "asset_idx"), "asset_id")
        .select("user_id", "asset_id", "viewed_at", "asset_idx")
        .toArrow()
    )
    found.release()
    if views.num_rows == 0:
        raise InputError(f"events at {source.events}: no valid view to split")
    # in id order, not in the order Spark collects them, which can change between runs: the user indices (ALS's
    # user ids, hence its blocks and their seeded starting factors) must not
    views = views.sort_by([("user_id", "ascending"), ("asset_idx", "ascending")])
    user = pd.factorize(views.column("user_id").to_pandas())[0].astype(np.int64)
    asset = views.column("asset_idx").to_numpy().astype(np.int64)
    micros = pc.fill_null(views.column("viewed_at").cast(pa.int64()), 0).to_numpy()
    split = split_views(user, asset, micros)
    is_test = np.isin(user * assets.num_rows + asset, split.test_user * assets.num_rows + split.test_asset)
    columns = views.select(["user_id", "asset_id", "viewed_at"])
    genres = genre_sets(assets.column("genres").to_pylist())
    return HeldOut(split, assets.column("asset_id"), genres), {
        "train": columns.filter(pa.array(~is_test)),
        "test": columns.filter(pa.array(is_test)),
        "metadata": assets,
    }


def evaluate(spark: SparkSession, config: Config) -> dict:
    """Score vectors with the fixed protocol: train on each user's earlier views, test on the last 5.

    Writes DIR/split/{train,test,metadata}, then prepares the inputs, samples and trains with the train views as the
    events under DIR, logging the figures to the training run; with `--embeddings TABLE` it scores that
    table instead of training. The figures are under "figures". With --baseline als, Spark ALS is trained on
    the same train views and scored by the same code: its figures and both wall times are under "baseline"
    and "film2vec_seconds", logged to the training run as als_* metrics (`film2vec evaluate` prints both side
    by side).

    Example::

        from film2vec import config, spark
        from film2vec.evaluation.stage import evaluate
        settings = config.load_profile("local"); settings.data.out = "/tmp/f2v"
        evaluate(spark.get_spark(settings.spark), settings)
    """
    held_out, split_tables = split_events(spark, config)
    summary: dict = {"users_evaluated": int(np.unique(held_out.split.test_user).size)}
    log.info("split: the last views of %s users held out for testing", f"{summary['users_evaluated']:,}")
    if config.evaluate.embeddings:
        embeddings = read_input(spark, config.evaluate.embeddings, "embeddings", ("asset_id", "vector"))
        embeddings = embeddings.select("asset_id", "vector").toArrow()
        summary.update(
            embeddings=config.evaluate.embeddings,
            figures=held_out.score(embeddings),
            recommend_figures=held_out.score_tastes(embeddings, config.apps),
        )
        if config.evaluate.baseline:
            summary["baseline"] = als_baseline(spark, config, held_out)
        return summary
    watch = Stopwatch()
    for name, table in split_tables.items():
        tables.of(config, f"split/{name}").write(table)
    on_train = copy.deepcopy(config)
    on_train.data.events = config.out("split/train")  # with split/metadata, film2vec's own (OWN_EVENTS)
    summary["inputs"] = inputs_with_store("inputs", spark, on_train)
    summary["sample"] = timed("sample", sample, spark, on_train)
    summary["train"] = timed("train", train_vectors, spark, on_train, held_out=held_out)
    summary["film2vec_seconds"] = watch.seconds
    trained = gate.candidate_rows(spark, on_train, "embeddings", summary["train"]["model_version"])
    embeddings = trained.select("asset_id", "vector").toArrow()
    summary.update(
        split=config.out("split"),
        figures=summary["train"]["figures"],
        recommend_figures=held_out.score_tastes(embeddings, config.apps),
    )
    metrics = {f"recommend_{name}": value for name, value in summary["recommend_figures"].items()}
    if config.evaluate.baseline:
        summary["baseline"] = baseline = als_baseline(spark, config, held_out)
        metrics.update(
            {
                **{f"als_{name}": value for name, value in baseline["figures"].items()},
                **{f"als_recommend_{name}": value for name, value in baseline["recommend_figures"].items()},
                "als_seconds": baseline["seconds"],
                "film2vec_seconds": summary["film2vec_seconds"],
            }
        )
    with mlflow.start_run(run_id=summary["train"]["run_id"]):
        mlflow.log_metrics(metrics)
    return summary


def als_baseline(spark: SparkSession, config: Config, held_out: HeldOut) -> dict:
    """Spark ALS (rank --dim) on the split's train views, scored by the protocol: its item factors as the
    vectors ("figures"), and its own ranking by user · item factors ("recommend_figures"); "seconds" is the
    wall time of both, fitting included. The item factors are written to DIR/split/als_embeddings, a table
    `film2vec evaluate --embeddings` scores to the same figures."""
    log.info("baseline: Spark ALS on the same train views …")
    watch = Stopwatch()
    split = held_out.split
    train_views = pa.table(
        {"user_idx": split.train_user.astype(np.int32), "asset_idx": split.train_asset.astype(np.int32)}
    )
    factors = fit_als(spark.createDataFrame(train_views), config.train.dim, config.evaluate, config.seed)
    items = tables.embeddings_table(held_out.asset_ids.take(factors.assets), factors.asset_vectors)
    users = factors.user_matrix(int(split.train_user.max()) + 1)
    figures = held_out.score(items)
    recommend_figures = held_out.score_recommender(users, items)
    seconds = watch.seconds
    log.info("baseline done in %.1f s", seconds)
    tables.of(config, "split/als_embeddings").write(items)
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
