"""Two writers of one table are told so clearly; two runs with their own --out do not interfere."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from film2vec import tables
from film2vec.config import Config
from film2vec.conflicts import ConcurrentWriteError
from film2vec.seasons.stage import write_season

ATTEMPTS = 10  # races until both writers read the table before either commits; the first one usually does


def race(write_first, write_second) -> list[BaseException]:
    """Run both writes at once (released together by a barrier); the errors they raised."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(write) -> None:
        start.wait()
        try:
            write()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(write,)) for write in (write_first, write_second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def samples(spark, season: int, first_origin: int):
    """2,000 samples of a season whose origins start at `first_origin`, so each writer's rows are recognisable."""
    return spark.range(2_000).select(
        F.lit(season).cast("int").alias("season"),
        (F.col("id") + first_origin).cast("int").alias("origin"),
        F.lit(0).alias("target"),
    )


def origins_of_season(path: str, season: int) -> Counter:
    table = DeltaTable(path).to_pyarrow_table(filters=[("season", "=", season)], columns=["origin"])
    return Counter(origin // 10_000 for origin in table.column("origin").to_pylist())


def test_two_writers_of_one_season_are_told_and_the_season_holds_one_of_them(spark, tmp_path):
    path = str(tmp_path / "seasons")
    write_season(samples(spark, 0, 0), path, 0)
    for _ in range(ATTEMPTS):
        errors = race(
            lambda: write_season(samples(spark, 3, 10_000), path, 3),
            lambda: write_season(samples(spark, 3, 20_000), path, 3),
        )
        if errors:
            break
    assert len(errors) == 1, errors if errors else f"no conflict in {ATTEMPTS} races"
    assert isinstance(errors[0], ConcurrentWriteError)
    assert str(errors[0]).startswith(f"season 3 of {path} was written by another job at the same time")
    # the season holds exactly one writer's 2,000 rows, and season 0 is untouched
    assert list(origins_of_season(path, 3).values()) == [2_000]
    assert origins_of_season(path, 0) == {0: 2_000}


def test_two_overwrites_of_the_pair_table_are_told(spark, tmp_path):
    config = Config()
    config.data.out = str(tmp_path)
    path = config.out("pairs")

    def write(frame) -> None:
        tables.of(config, "pairs").write(frame)

    def pairs(co_views: int):
        return spark.range(1_000).select(
            F.col("id").alias("asset_a"), (F.col("id") + 1).alias("asset_b"), F.lit(co_views).alias("co_views")
        )

    write(pairs(0))
    for _ in range(ATTEMPTS):
        errors = race(lambda: write(pairs(1)), lambda: write(pairs(2)))
        if errors:
            break
    assert len(errors) == 1, errors if errors else f"no conflict in {ATTEMPTS} races"
    assert isinstance(errors[0], ConcurrentWriteError)
    assert str(errors[0]).startswith(f"{path} was written by another job at the same time")
    written = DeltaTable(path).to_pyarrow_table().column("co_views").to_pylist()
    assert len(written) == 1_000 and len(set(written)) == 1 and written[0] in (1, 2)


def test_other_spark_errors_pass_through_unchanged(spark, tmp_path):
    path = str(tmp_path / "seasons")
    write_season(samples(spark, 0, 0), path, 0)
    wrong_schema = samples(spark, 1, 0).withColumn("target", F.lit("text"))
    with pytest.raises(Exception) as raised:
        write_season(wrong_schema, path, 1)
    assert not isinstance(raised.value, ConcurrentWriteError)
