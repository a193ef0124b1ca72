"""The ingest stage: the synthetic catalogue written by Spark, rejects kept when nothing is valid, --since, evaluate's
split indexed on the driver."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from film2vec import tables
from film2vec.config import Config, ConfigError
from film2vec.errors import InputError
from film2vec.ingest.stage import generate, prepare_views, since_moment
from film2vec.ingest.synthetic import generate_catalogue, plan_catalogue
from film2vec.ingest.validated import check_validated


def write(path: Path, lines: list[str]) -> str:
    """A small CSV fixture; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def test_generate_writes_the_in_memory_catalogue_drawn_chunk_by_chunk_in_spark(spark, tmp_path):
    """`film2vec generate` draws each chunk of users in a Spark task; together they are generate_catalogue's."""
    config = Config()
    config.data.out = str(tmp_path)
    # 1M views a chunk by default: 10 users of 100,000 views each (clipped to the catalogue) make 3 chunks
    config.synthetic.users, config.synthetic.views_per_user = 30, 100_000.0
    assert plan_catalogue(config.synthetic, config.seed).chunks == 3
    summary = generate(spark, config)
    expected = generate_catalogue(config.synthetic, config.seed)
    written = (
        DeltaTable(summary["events"]).to_pyarrow_table().sort_by([("user_id", "ascending"), ("asset_id", "ascending")])
    )
    assert written.equals(expected.events_table())
    assert DeltaTable(summary["metadata"]).to_pyarrow_table().sort_by("asset_id").equals(expected.assets_table())
    assert summary["views"] == written.num_rows


def test_prepare_views_writes_rejects_then_stops_when_nothing_is_valid(spark, tmp_path: Path) -> None:
    config = Config()
    config.data.out = str(tmp_path / "out")
    config.data.events = write(tmp_path / "events.csv", ["user_id,asset_id", "a,", ",b"])

    with pytest.raises(InputError) as error:
        prepare_views(spark, config)

    assert str(error.value).startswith(f"events at {config.data.events}: none of the 2 rows is a valid view")
    written = spark.read.format("delta").load(config.out("rejects")).collect()
    assert sorted(tuple(row) for row in written) == [
        ("asset_id is null", '{"user_id":"a","asset_id":null}', config.data.events),
        ("user_id is null", '{"user_id":null,"asset_id":"b"}', config.data.events),
    ]


def test_since_must_be_a_time():
    with pytest.raises(ConfigError, match="--since: 'yesterday' is not a time"):
        since_moment("yesterday")
    assert since_moment("1700000000") == datetime.fromtimestamp(1_700_000_000, timezone.utc)
    assert since_moment("2024-05-01").tzinfo == timezone.utc


def test_far_future_times_are_written_as_every_reader_reads_them(spark, tmp_path: Path) -> None:
    config = Config()
    config.data.out = str(tmp_path / "out")
    config.data.events = write(
        tmp_path / "events.csv", ["user_id,asset_id,viewed_at", "1,10,2999-01-01T00:00:00", "2,10,2024-05-01T00:00:00"]
    )
    summary = prepare_views(spark, config)
    assert summary["rejected_by_reason"] == {"viewed_at outside 1677-09-22 to 2262-04-11": 1}
    views = DeltaTable(config.out("views")).to_pyarrow_table(columns=["user_id", "viewed_at"])  # delta-rs reads it
    assert [stamp.year for stamp in views.column("viewed_at").to_pylist()] == [2024]


def test_times_in_milliseconds_are_refused_with_a_hint(spark, tmp_path: Path) -> None:
    config = Config()
    config.data.out = str(tmp_path / "out")
    config.data.events = write(
        tmp_path / "events.csv", ["user_id,asset_id,viewed_at", "1,10,1700000000000", "2,10,1700000360000"]
    )
    with pytest.raises(InputError, match=r"rejected by reason: \{'viewed_at in milliseconds': 2\}"):
        prepare_views(spark, config)


def test_evaluates_split_indexed_on_the_driver_is_what_sparks_ingest_makes_of_it(spark, tmp_path: Path) -> None:
    """The split evaluate wrote is not validated again: the tables and summary the driver makes of it are those
    Spark's ingest makes of the same views (an unviewed asset, a viewed one the metadata lacks, missing times)."""
    day = datetime(2024, 5, 1, tzinfo=timezone.utc)
    split = pa.table(
        {
            "user_id": pa.array([7, 7, 3, 3, 3, 9], pa.int64()),
            "asset_id": pa.array([30, 10, 10, 20, 50, 30], pa.int64()),
            "viewed_at": pa.array([day, None, day, day, None, day], pa.timestamp("us", "UTC")),
        }
    )
    metadata = pa.table(
        {
            "asset_id": pa.array([10, 20, 30, 40], pa.int64()),
            "title": ["Ten", None, "Thirty", "Forty"],
            "genres": [["Drama", "War"], None, [], ["Comedy"]],
        }
    )
    own = Config()
    own.data.out = str(tmp_path / "own")
    tables.of(own, "split/train").write(split)
    tables.of(own, "split/metadata").write(metadata)
    own.data.events = own.out("split/train")
    by_spark = Config()  # the same tables as a user's input, which Spark's ingest validates
    by_spark.data.out = str(tmp_path / "spark")
    by_spark.data.events, by_spark.data.metadata = own.out("split/train"), own.out("split/metadata")

    summary = prepare_views(spark, own)

    assert summary == prepare_views(spark, by_spark)
    assert (summary["assets"], summary["users"], summary["views_without_metadata"]) == (4, 3, 1)
    for name in ("views", "assets", "unviewed", "rejects"):
        driver, ingested = DeltaTable(own.out(name)), DeltaTable(by_spark.out(name))
        assert driver.schema() == ingested.schema(), name
        rows = [sorted(map(str, table.to_pyarrow_table().to_pylist())) for table in (driver, ingested)]
        assert rows[0] == rows[1], name
    assert DeltaTable(own.out("unviewed")).to_pyarrow_table().column("asset_id").to_pylist() == [40]


def test_a_split_with_what_evaluate_never_writes_is_refused() -> None:
    views = pa.table({"user_id": [1, 1, 2], "asset_id": [5, 5, 6]})
    with pytest.raises(InputError, match=r"^events at s: 1 repeated \(user_id, asset_id\) row\(s\); it is not"):
        check_validated(views, "s")
    with pytest.raises(InputError, match=r"^events at s: 1 row\(s\) without asset_id"):
        check_validated(pa.table({"user_id": [1, 2], "asset_id": [5, None]}), "s")
    check_validated(views.slice(1), "s")
