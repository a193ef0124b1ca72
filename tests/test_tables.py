"""The table layer: names (hostile ones refused or quoted), deletion vectors as Databricks turns them on, and
the refresh's compaction."""

from __future__ import annotations

import copy
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from film2vec import tables
from film2vec.config import Config
from film2vec.errors import InputError
from film2vec.ingest.readers import detect_layout, read_input
from film2vec.pairs.stage import count_pairs
from film2vec.seasons.stage import write_season
from film2vec.train.stream import read_season

DELETION_VECTORS_BY_DEFAULT = "spark.databricks.delta.properties.defaults.enableDeletionVectors"


def write(path: Path, lines: list[str]) -> None:
    """A small text fixture file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


@pytest.mark.parametrize(
    "text, parts",
    [
        ("shop.views", ["shop", "views"]),
        ("main.shop.views", ["main", "shop", "views"]),
        ("`my shop`.`views; DROP TABLE x`", ["my shop", "views; DROP TABLE x"]),
        ("`it``s`.views", ["it`s", "views"]),
    ],
)
def test_names_split_into_parts_and_are_quoted_back_whole(text, parts):
    assert tables.name_parts(text, "events") == parts
    assert tables.name_parts(tables.quoted(parts), "events") == parts


@pytest.mark.parametrize("text", ["shop.views; DROP TABLE x", "shop.'views'", "shop views", "shop..views", "`a", ""])
def test_names_that_are_not_names_are_refused(text):
    with pytest.raises(InputError, match="is not a table name"):
        tables.name_parts(text, "events")
    assert not tables.looks_like_table(text)


def test_a_path_is_never_taken_for_a_table_name(tmp_path):
    (tmp_path / "events.csv").write_text("user_id,asset_id\n")
    assert not tables.looks_like_table(str(tmp_path / "events.csv"))
    assert not tables.looks_like_table("s3://bucket/events")
    assert tables.looks_like_table("shop.events") and tables.looks_like_table("main.shop.events")


def test_a_schema_of_a_user_is_quoted_into_every_table_name():
    config = Config()
    config.data.catalog, config.data.schema = "main", "`film2vec; x`"
    assert tables.of(config, "pairs").name == "`main`.`film2vec; x`.`pairs`"
    assert tables.of(config, "seasons").name is None  # scratch stays at a path


def test_detect_layout_names_each_format_and_each_unknown_path(tmp_path: Path) -> None:
    (tmp_path / "table" / "_delta_log").mkdir(parents=True)
    layouts = {"u.data": "ml-100k", "ratings.dat": "ml-1m", "ratings.csv": "ml-latest"}
    for name in layouts:
        write(tmp_path / name.replace(".", "_") / name, ["1"])
    write(tmp_path / "pq" / "part-00000-x.snappy.parquet", [""])
    write(tmp_path / "pq" / "_SUCCESS", [""])
    write(tmp_path / "csvs" / "a.csv", ["user_id,asset_id"])
    write(tmp_path / "mixed" / "a.csv", [""])
    write(tmp_path / "mixed" / "b.json", [""])
    write(tmp_path / "notes.txt", [""])
    (tmp_path / "empty").mkdir()

    assert detect_layout(str(tmp_path / "table")) == "delta"
    for name, layout in layouts.items():
        assert detect_layout(str(tmp_path / name.replace(".", "_"))) == layout
    assert detect_layout(str(tmp_path / "pq")) == "parquet"
    assert detect_layout(str(tmp_path / "csvs")) == "csv"
    assert detect_layout(str(tmp_path / "csvs" / "a.csv")) == "csv"
    failures = {
        "missing": "no such file or folder",
        "empty": "the folder is empty",
        "mixed": "cannot tell the format of this folder (it holds a.csv, b.json)",
        "notes.txt": "unknown file type",
    }
    for name, problem in failures.items():
        with pytest.raises(InputError, match="events at") as error:
            detect_layout(str(tmp_path / name))
        assert f"{tmp_path / name}: {problem}" in str(error.value)


def test_a_table_a_user_names_is_read_by_the_one_reader_and_a_wrong_one_is_named(spark, tmp_path: Path) -> None:
    write(tmp_path / "rail.csv", ["asset_id,row", "7,a", "9,b"])
    write(tmp_path / "ml" / "ratings.csv", ["userId,movieId,rating,timestamp"])
    spark.createDataFrame([(3,)], "asset_id long").write.format("delta").save(str(tmp_path / "rail"))

    assert sorted(
        r.asset_id for r in read_input(spark, str(tmp_path / "rail.csv"), "candidates", ("asset_id",)).collect()
    ) == ["7", "9"]
    assert [r.asset_id for r in read_input(spark, str(tmp_path / "rail"), "candidates", ("asset_id",)).collect()] == [3]
    problems = {"rail.csv": ("title",), "ml": ("asset_id",), "nowhere": ("asset_id",)}
    messages = {
        "rail.csv": "missing column(s) title; found asset_id, row",
        "ml": "a MovieLens folder",
        "nowhere": "no such file or folder",
    }
    for name, columns in problems.items():
        with pytest.raises(InputError) as error:
            read_input(spark, str(tmp_path / name), "candidates", columns)
        assert str(error.value).startswith(f"candidates at {tmp_path / name}: {messages[name]}")
    with pytest.raises(InputError, match="candidates no_schema.rail: no such table in the metastore"):
        read_input(spark, "no_schema.rail", "candidates", ("asset_id",))


def test_paths_and_column_names_with_quotes_backticks_semicolons_and_spaces_reach_the_right_data(spark, tmp_path):
    """No text of a user's reaches SQL unquoted: such names are data to film2vec, and the counts come out exact."""
    folder = tmp_path / 'it\'s; a `folder` with "spaces"'
    folder.mkdir()
    user, asset = "who's; watching", "`what` -- it is"
    watched = {"u1": ["a", "b", "c"], "u2": ["a", "b"], "u3": ["b", "c"]}
    lines = [f'"{user}","{asset}"'] + [f"{who},{what}" for who, assets in watched.items() for what in assets]
    (folder / "views.csv").write_text("\n".join(lines) + "\n")
    config = Config()
    config.data.events, config.data.out = str(folder / "views.csv"), str(folder / "out; DROP TABLE x")
    config.data.user_col, config.data.asset_col = user, asset
    count_pairs(spark, config)
    pairs = {(row.asset_a, row.asset_b): row.co_views for row in tables.of(config, "pairs").read(spark).collect()}
    brute = {}
    for assets in watched.values():
        for a in assets:
            for b in assets:
                if a != b:
                    brute[a, b] = brute.get((a, b), 0) + 1
    assert pairs == brute
    assert (folder / "out; DROP TABLE x" / "pairs" / "_delta_log").is_dir()


def test_tables_read_without_spark_keep_deletion_vectors_off_whatever_the_platform_default(spark, tmp_path):
    samples = spark.range(40).select(
        F.lit(0).alias("season"),
        F.col("id").alias("draw"),
        F.col("id").cast("int").alias("origin"),
        (F.col("id") + 1).cast("int").alias("target"),
    )
    config = Config()
    config.data.out = str(tmp_path)
    spark.conf.set(DELETION_VECTORS_BY_DEFAULT, "true")  # as Databricks creates new tables
    try:
        write_season(samples, config.out("seasons"), 0)
        tables.of(config, "embeddings").write(
            spark.createDataFrame([(1, [0.5, 0.5])], "asset_id long, vector array<float>")
        )
        samples.write.format("delta").save(str(tmp_path / "by_default"))
    finally:
        spark.conf.unset(DELETION_VECTORS_BY_DEFAULT)
    for table in ("seasons", "embeddings"):
        properties = {
            row.key: row.value for row in spark.sql(f"SHOW TBLPROPERTIES delta.`{config.out(table)}`").collect()
        }
        assert properties["delta.enableDeletionVectors"] == "false"
    assert sum(batch.num_rows for batch in read_season(config.out("seasons"), 0)) == 40
    assert DeltaTable(config.out("embeddings")).to_pyarrow_table().num_rows == 1

    spark.sql(f"DELETE FROM delta.`{tmp_path / 'by_default'}` WHERE origin < 5")  # a deletion vector, not a rewrite
    with pytest.raises(InputError, match=r"cannot be read without Spark.*enableDeletionVectors = false"):
        list(read_season(str(tmp_path / "by_default"), 0))
    assert spark.read.format("delta").load(str(tmp_path / "by_default")).count() == 35  # Spark reads it

    mapped = tmp_path / "mapped"  # its files name the columns by id
    spark.sql(
        f"CREATE TABLE delta.`{mapped}` (season int, draw long, origin int, target int) USING delta "
        "PARTITIONED BY (season) TBLPROPERTIES ('delta.columnMapping.mode' = 'name')"
    )
    samples.write.format("delta").mode("append").save(str(mapped))
    with pytest.raises(InputError, match=r"reader feature columnMapping.*DROP FEATURE columnMapping$"):
        list(read_season(str(mapped), 0))


def test_a_local_tables_version_read_from_its_log_is_the_version_delta_history_gives(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    with pytest.raises(InputError, match=r"views"):
        tables.of(config, "views").version(spark)
    spark.conf.set(DELETION_VECTORS_BY_DEFAULT, "true")  # a log delta-rs cannot scan the rows of
    try:
        tables.of(config, "views").write(spark.range(10).withColumnRenamed("id", "user_id"))
        tables.of(config, "views").append(spark.range(10, 12).withColumnRenamed("id", "user_id"))
        spark.sql(f"DELETE FROM delta.`{config.out('views')}` WHERE user_id < 3")
    finally:
        spark.conf.unset(DELETION_VECTORS_BY_DEFAULT)
    history = tables.of(config, "views").delta(spark).history(1).first()["version"]
    assert tables.of(config, "views").version(spark) == history == 2


def test_a_local_tables_changes_read_from_its_log_are_those_delta_history_gives(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    views = tables.of(config, "views")
    views.write(spark.range(10).withColumnRenamed("id", "user_id"))
    views.append(spark.range(10, 12).withColumnRenamed("id", "user_id"))
    views.delta(spark).optimize().executeCompaction()  # keeps the rows
    views.write(spark.range(3).withColumnRenamed("id", "user_id"))
    spark.sql("CREATE SCHEMA IF NOT EXISTS film2vec_history")
    try:  # the same table by name: Delta's history, a Spark job
        spark.sql(f"CREATE TABLE film2vec_history.views USING delta LOCATION '{views.path}'")
        by_name = copy.deepcopy(config)
        by_name.data.schema = "film2vec_history"
        assert not tables.of(by_name, "views").local_folder
        assert tables.of(by_name, "views").changed_since(spark, 0) == views.changed_since(spark, 0) == [1, 3]
        assert tables.of(by_name, "views").changed_since(spark, 3) == views.changed_since(spark, 3) == []
    finally:
        spark.sql("DROP SCHEMA film2vec_history CASCADE")


def test_a_local_table_read_by_delta_rs_holds_what_spark_reads(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    rows = [(2, 12, 3, ["Drama"]), (0, 10, 5, None), (1, 11, 1, ["Comedy", "Drama"])]
    tables.of(config, "assets").write(
        spark.createDataFrame(rows, "asset_idx int, asset_id long, views long, genres array<string>")
    )
    columns = ["asset_idx", "asset_id", "views", "genres"]
    assert tables.of(config, "assets").local_folder
    by_delta_rs = tables.of(config, "assets").read_arrow(spark, columns).sort_by("asset_idx")
    by_spark = tables.of(config, "assets").read(spark).select(*columns).orderBy("asset_idx").toArrow()
    assert by_delta_rs.to_pylist() == by_spark.to_pylist()
    assert by_delta_rs.column("asset_id").type == by_spark.column("asset_id").type


def test_a_local_table_whose_files_do_not_hold_its_rows_as_they_are_is_read_by_spark(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    rows = spark.createDataFrame([(i, 10 * i) for i in range(6)], "asset_idx int, views long")
    features = {  # the files name the columns by id; a delete marks rows instead of rewriting the files
        "assets": "'delta.columnMapping.mode' = 'name', 'delta.enableDeletionVectors' = 'false'",
        "views": "'delta.enableDeletionVectors' = 'true'",
    }
    for key, properties in features.items():
        table = tables.of(config, key)
        spark.sql(
            f"CREATE TABLE delta.`{table.path}` (asset_idx int, views long) USING delta TBLPROPERTIES ({properties})"
        )
        rows.write.format("delta").mode("append").save(table.path)
        spark.sql(f"DELETE FROM delta.`{table.path}` WHERE asset_idx < 2")
        read = table.read_arrow(spark, ["asset_idx", "views"]).sort_by("asset_idx")
        assert read.to_pylist() == [{"asset_idx": i, "views": 10 * i} for i in range(2, 6)], key
        assert table.rows_and_distinct(spark, "asset_idx") == (4, 4), key


def test_delta_rs_writes_local_tables_whose_features_it_keeps_and_spark_writes_the_others(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    tables.of(config, "rejects").write(pa.table({"user_id": [1, 2, 3]}), record={"film2vec_test": 7})
    assert DeltaTable(config.out("rejects")).history(1)[0]["engineInfo"].startswith("delta-rs")
    assert tables.of(config, "rejects").records(spark, "film2vec_test") == [(0, 7)]  # provenance, as Spark's
    tables.of(config, "rejects").append(spark.createDataFrame([(4,)], "user_id long"))
    assert sorted(row.user_id for row in tables.of(config, "rejects").read(spark).collect()) == [1, 2, 3, 4]
    small = spark.range(5).withColumnRenamed("id", "user_id")
    tables.of(config, "rejects").write(small, at_most=5)  # a frame known to be small is collected
    assert DeltaTable(config.out("rejects")).history(1)[0]["engineInfo"].startswith("delta-rs")

    fed = spark.range(2).write.format("delta").option("delta.enableChangeDataFeed", "true")
    fed.save(config.out("embeddings"))  # a writer feature delta-rs keeps: Spark reads its overwrite as changes
    tables.of(config, "embeddings").write(pa.table({"id": [5, 6, 7]}), **tables.CHANGE_FEED)
    assert DeltaTable(config.out("embeddings")).history(1)[0]["engineInfo"].startswith("delta-rs")
    changes = spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 1)
    changes = changes.load(config.out("embeddings")).groupBy("_change_type").count().collect()
    assert dict(tuple(row) for row in changes) == {"delete": 2, "insert": 3}

    tracked = spark.range(2).write.format("delta").option("delta.enableRowTracking", "true")
    tracked.save(config.out("audit"))  # a writer feature delta-rs may not keep
    tables.of(config, "audit").write(pa.table({"id": [7, 8, 9]}))
    assert DeltaTable(config.out("audit")).protocol().min_writer_version == 7
    assert not DeltaTable(config.out("audit")).history(1)[0]["engineInfo"].startswith("delta-rs")
    assert sorted(row.id for row in tables.of(config, "audit").read(spark).collect()) == [7, 8, 9]


def test_compaction_merges_small_files_and_vacuum_removes_the_unreferenced(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    config.refresh.vacuum_retention_hours = 0.0
    pairs = spark.range(100).select(
        F.col("id").alias("asset_a"), F.col("id").alias("asset_b"), F.lit(1).alias("co_views")
    )
    tables.of(config, "pairs").write(pairs.repartition(4))
    views = spark.range(10).select(F.col("id").alias("user_id"), F.col("id").alias("asset_id"))
    tables.of(config, "views").write(views)
    for _ in range(3):
        tables.of(config, "views").append(views.repartition(2))
    before = {table: len(DeltaTable(config.out(table)).file_uris()) for table in ("pairs", "views")}
    summary = {
        table: tables.of(config, table).compact(spark, config.refresh.vacuum_retention_hours)
        for table in ("views", "pairs")
    }
    after = {table: len(DeltaTable(config.out(table)).file_uris()) for table in ("pairs", "views")}
    assert after == {"pairs": 1, "views": 1} and before["views"] > 1
    assert summary["views"]["files_removed"] == before["views"]
    on_disk = [path for path in (tmp_path / "views").glob("*.parquet")]
    assert len(on_disk) == 1  # vacuumed: only the compacted file is left
    assert tables.of(config, "views").read(spark).count() == 40


def test_a_table_whose_first_write_never_committed_reads_as_not_written_yet(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    half = tmp_path / "assets"
    (half / "_delta_log").mkdir(parents=True)  # what a process killed during its first write leaves
    (half / "part-00000.snappy.parquet").write_bytes(b"PAR1")
    assert not tables.of(config, "assets").exists(spark)
    with pytest.raises(InputError, match=r"assets not written yet \(a write stopped before its first commit\): run"):
        tables.of(config, "assets").read(spark)
    with pytest.raises(InputError, match="is not written yet"):
        tables.open_without_spark(str(half), "assets")
    with pytest.raises(InputError, match=r"unviewed not found: run `film2vec pairs`"):
        tables.of(config, "unviewed").read(spark)  # nothing there at all
