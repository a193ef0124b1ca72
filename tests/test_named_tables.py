"""Tables by name in a real, persistent metastore (Spark's Hive support, embedded Derby): events from a
metastore table with other column names in, every table users read written to a schema, each found by name
by a later process."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np

from film2vec.errors import ExitCode

SMALL = ["--seasons", "1", "--samples-per-view", "0.5", "--negatives", "3", "--sample-partitions", "2", "--dim", "8"]
SMALL += ["--batch-size", "256"]
SPARK = ["--master", "local[2]", "--shuffle-partitions", "2", "--driver-memory", "1g"]

MAKE_INPUTS = """
import sys
from film2vec.config import SparkConfig
from film2vec.spark import get_spark

spark = get_spark(SparkConfig(master="local[1]", shuffle_partitions=2, metastore=sys.argv[1]), metastore=True)
views = [tuple(int(x) for x in line.split(",")) for line in sys.argv[2].split(";")]
spark.sql("CREATE SCHEMA IF NOT EXISTS shop")
spark.createDataFrame(views, "viewer long, item long, watched long").write.format("delta").saveAsTable("shop.watch_log")
items = [(item, f"Item {item}", "Drama" if item % 2 else "Comedy") for item in range(15)]
spark.createDataFrame(items, "item long, name string, labels string").write.format("delta").saveAsTable("shop.items")
"""

READ_BY_NAME = """
import json, sys
from film2vec.config import SparkConfig
from film2vec.spark import get_spark

spark = get_spark(SparkConfig(master="local[1]", shuffle_partitions=2, metastore=sys.argv[1]), metastore=True)
found = {}
for table in sys.argv[2].split(","):
    frame = spark.table(f"spark_catalog.film2vec_out.{table}")
    detail = spark.sql(f"DESCRIBE DETAIL spark_catalog.film2vec_out.{table}").first()
    found[table] = {"rows": frame.count(), "format": detail["format"], "columns": frame.columns}
views = spark.table("spark_catalog.film2vec_out.views").select("user_id", "asset_id").collect()
found["view_pairs"] = sorted([row["user_id"], row["asset_id"]] for row in views)
pairs = spark.table("spark_catalog.film2vec_out.pairs").collect()
found["pair_counts"] = sorted([row["asset_a"], row["asset_b"], row["co_views"]] for row in pairs)
print(json.dumps(found))
"""

USER_TABLES = (
    "views,assets,rejects,unviewed,pairs,embeddings,neighbours,user_vectors,recommendations,audit,clusters,"
    "asset_clusters"
)


def python(script: str, *arguments: str, cwd) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_", "MLFLOW_"))}
    done = subprocess.run(
        [sys.executable, "-c", script, *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def film2vec(*arguments: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "film2vec.cli", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_events_from_a_metastore_table_and_every_output_by_name_in_a_later_process(tmp_path):
    rng = np.random.default_rng(5)
    views = {(user, int(asset)) for user in range(40) for asset in rng.choice(12, 4, replace=False)}
    rows = sorted(views) + [sorted(views)[0]]  # a duplicate view, merged into one
    metastore = str(tmp_path / "metastore")
    python(
        MAKE_INPUTS, metastore, ";".join(f"{u},{a},{1_700_000_000 + i}" for i, (u, a) in enumerate(rows)), cwd=tmp_path
    )

    events = [
        "--events", "shop.watch_log", "--user-col", "viewer", "--asset-col", "item", "--time-col", "watched",
        "--metadata", "spark_catalog.shop.items", "--title-col", "name", "--genres-col", "labels",
    ]  # fmt: skip
    outputs = ["--catalog", "spark_catalog", "--schema", "film2vec_out", "--metastore", metastore]
    outputs += ["--out", str(tmp_path / "out")]
    # the co-view walk reads the pair table, so `run` counts it into the schema too
    ran = film2vec("run", *events, *outputs, *SMALL, *SPARK, "--walk", "coview", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-4000:]
    used = film2vec("uses", *outputs, *SPARK, "--n-clusters", "2", "--map-assets", "10", cwd=tmp_path)
    assert used.returncode == 0, used.stderr[-4000:]

    found = json.loads(python(READ_BY_NAME, metastore, USER_TABLES, cwd=tmp_path).splitlines()[-1])
    assert {table: found[table]["format"] for table in USER_TABLES.split(",")} == dict.fromkeys(
        USER_TABLES.split(","), "delta"
    )
    assert sorted(map(tuple, found["view_pairs"])) == sorted(views)
    by_user: dict[int, list[int]] = {}
    for user, asset in views:
        by_user.setdefault(user, []).append(asset)
    expected = Counter(pair for assets in by_user.values() for pair in itertools.permutations(assets, 2))
    assert {(a, b): n for a, b, n in found["pair_counts"]} == dict(expected)
    assert found["assets"]["rows"] == len({asset for _, asset in views})
    assert found["unviewed"]["rows"] == 15 - found["assets"]["rows"]
    assert found["embeddings"]["rows"] == found["assets"]["rows"]
    assert found["neighbours"]["rows"] == found["embeddings"]["rows"] * min(10, found["embeddings"]["rows"] - 1)
    assert found["user_vectors"]["rows"] == 40
    assert not (tmp_path / "out" / "pairs").exists()  # the user tables went to the schema, not under --out
    assert (tmp_path / "out" / "seasons" / "_delta_log").is_dir()  # scratch stays at the path


def test_a_missing_table_and_a_hostile_schema_are_refused_clearly(tmp_path):
    metastore = str(tmp_path / "metastore")
    missing = film2vec("pairs", "--events", "shop.nothing_here", "--metastore", metastore, *SPARK, cwd=tmp_path)
    assert missing.returncode == ExitCode.BAD_INPUT
    assert "events shop.nothing_here: no such table in the metastore" in missing.stderr
    hostile = film2vec(
        "pairs", "--events", "shop.nothing_here", "--schema", "x; DROP TABLE y", "--metastore", metastore, cwd=tmp_path
    )
    assert hostile.returncode == ExitCode.USAGE
    assert "'x; DROP TABLE y' is not a table name" in hostile.stderr
