"""The job code runs over Spark Connect (no SparkContext), as on Databricks serverless.

A subprocess starts a local Spark Connect server (pyspark's `builder.remote("local[2]")`, through
film2vec.spark.get_spark) and runs the real pair count and one season of sampling, writing Delta. The
results must equal brute force (pairs) and the classic session's draw of the same season (samples).
Connect runs in its own process: a classic and a Connect session do not share one Python process.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter
from operator import itemgetter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from film2vec.config import SeasonsConfig
from film2vec.seasons.stage import season_sampler

SEASON, SEED = 1, 7
SEASONS = SeasonsConfig(
    walk="coview", origin_distribution="stratified", samples_per_view=2.0, negatives=3, sample_partitions=2
)

CONNECT_JOB = f"""
import sys, warnings
from pyspark.errors import PySparkAttributeError
from film2vec.config import SeasonsConfig, SparkConfig
from film2vec.pairs.stage import pairs_by_gram
from film2vec.seasons.stage import season_sampler
from film2vec.spark import get_spark

warnings.filterwarnings("ignore", message="Failed to set")  # static confs the server already has
folder = sys.argv[1]
spark = get_spark(SparkConfig(master="local[2]", shuffle_partitions=2), "film2vec-connect", connect=True)
assert type(spark).__module__ == "pyspark.sql.connect.session", type(spark)
try:
    spark.sparkContext
    raise SystemExit("a Connect session must not have a SparkContext")
except PySparkAttributeError:
    pass
views = spark.read.parquet(folder + "/views.parquet")
assets = spark.read.parquet(folder + "/assets.parquet")
views = views.join(assets.select("asset_idx", "asset_id"), "asset_idx")
pairs_by_gram(views, assets, 2).write.format("delta").save(folder + "/pairs")
pairs = spark.read.format("delta").load(folder + "/pairs")
config = SeasonsConfig(walk={SEASONS.walk!r}, origin_distribution={SEASONS.origin_distribution!r},
                       samples_per_view={SEASONS.samples_per_view}, negatives={SEASONS.negatives},
                       sample_partitions={SEASONS.sample_partitions})
season_sampler(config, {SEED}, assets, pairs=pairs).write({SEASON}, folder + "/seasons")
print("connect job done")
"""


def planted_views(rng: np.random.Generator, users: int = 30, assets: int = 12, per_user: int = 4) -> pa.Table:
    """Each user views `per_user` distinct assets; asset ids are strings to keep the id mapping honest."""
    rows = [(user, int(a)) for user in range(users) for a in rng.choice(assets, per_user, replace=False)]
    return pa.table({"user_id": [u for u, _ in rows], "asset_idx": [a for _, a in rows]})


def brute_force_pairs(views: pa.Table) -> Counter:
    seen: dict[int, set[int]] = {}
    for user, asset in zip(views.column("user_id").to_pylist(), views.column("asset_idx").to_pylist()):
        seen.setdefault(user, set()).add(asset)
    return Counter(pair for assets in seen.values() for pair in itertools.permutations(sorted(assets), 2))


def test_pairs_and_a_season_over_spark_connect(spark, tmp_path: Path):
    views = planted_views(np.random.default_rng(3))
    views_per_asset = np.bincount(views.column("asset_idx").to_numpy(), minlength=12)
    assets = pa.table(
        {"asset_idx": list(range(12)), "asset_id": [f"film-{i}" for i in range(12)], "views": views_per_asset}
    )
    pq.write_table(views, tmp_path / "views.parquet")
    pq.write_table(assets, tmp_path / "assets.parquet")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("SPARK_REMOTE", None)
    done = subprocess.run(
        [sys.executable, "-c", CONNECT_JOB, str(tmp_path)], env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0 and "connect job done" in done.stdout, done.stderr[-4000:]

    pairs = DeltaTable(str(tmp_path / "pairs")).to_pyarrow_table().to_pylist()
    expected = {(f"film-{a}", f"film-{b}"): n for (a, b), n in brute_force_pairs(views).items()}
    assert {(p["asset_a"], p["asset_b"]): p["co_views"] for p in pairs} == expected
    assert len(pairs) == len(expected)

    connect_season = DeltaTable(str(tmp_path / "seasons")).to_pyarrow_table().to_pylist()
    classic_assets = spark.createDataFrame(assets)
    classic_pairs = spark.read.format("delta").load(str(tmp_path / "pairs"))
    sampler = season_sampler(SEASONS, SEED, classic_assets, pairs=classic_pairs)
    classic_season = [row.asDict() for row in sampler.samples(SEASON).collect()]
    sampler.release()
    key = itemgetter("draw", "origin", "target")
    origins = sorted({a for a, _ in brute_force_pairs(views)})
    per_origin = round(SEASONS.samples_per_view * views_per_asset[origins].sum() / len(origins))  # stratified
    assert len(connect_season) == per_origin * len(origins)
    assert sorted(map(key, connect_season)) == sorted(map(key, classic_season))
    by_id = {f"film-{i}": i for i in range(12)}
    coviewed = {(by_id[a], by_id[b]) for a, b in expected}
    assert all((row["origin"], row["target"]) in coviewed for row in connect_season)
    assert {row["season"] for row in connect_season} == {SEASON}
