"""The tables the walk reads, made current: the first stage of `run`, `refresh` and `evaluate`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import SparkSession

from film2vec import tracking
from film2vec.config import Config
from film2vec.ingest.stage import merge_new_views, prepare_views
from film2vec.pairs.stage import count_pairs
from film2vec.seasons.stage import walk_inputs
from film2vec.timing import timed

PAIRS_NOT_COUNTED = "not counted: the bipartite walk reads DIR/views; `film2vec pairs` counts them"


def prepare_inputs(spark: SparkSession, config: Config) -> dict:
    """The tables the walk reads, made current: the events ingested into DIR/views and DIR/assets (new views
    merged, with --new-events or --since), and the co-view pairs counted into DIR/pairs only when the walk
    reads them (--walk coview): a bipartite run does not pay for a table it never reads."""
    if "pairs" in walk_inputs(config):
        return count_pairs(spark, config)
    if config.merges_new_views:
        return {**merge_new_views(spark, config), "pairs": PAIRS_NOT_COUNTED}
    return {"ingest": prepare_views(spark, config), "pairs": PAIRS_NOT_COUNTED}


def inputs_with_store(name: str, spark: SparkSession, config: Config) -> dict:
    """prepare_inputs, timed as `name`, while a thread opens MLflow's store and experiment for the training
    that follows (tracking.open_experiment)."""
    with ThreadPoolExecutor(1, thread_name_prefix="film2vec-mlflow") as pool:
        opened = pool.submit(tracking.open_experiment, config.data.out, config.tracking.experiment)
        summary = timed(name, prepare_inputs, spark, config)
        opened.result()
    return summary
