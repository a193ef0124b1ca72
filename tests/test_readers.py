"""Readers and validation on tiny hand-written files with exact answers, plus the real ml-latest-small."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from film2vec.errors import InputError
from film2vec.ingest.readers import ReadRules, ingest

ML_LATEST_SMALL = Path("/work/shared/data/ml-latest-small")


def write(path: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\n") -> str:
    """A small fixture file with the given encoding and line ending; returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode(encoding))
    return str(path)


STRICT = ReadRules(strict_metadata=True)  # views of assets the metadata lacks are rejected


def seconds(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp())


def views_of(found) -> list[tuple]:
    """(user, asset, Unix seconds of the view) sorted; seconds keep the check free of the session time zone."""
    rows = found.views.select("user_id", "asset_id", F.unix_seconds("viewed_at").alias("at")).collect()
    return sorted(tuple(row) for row in rows)


def assets_of(found) -> list[tuple]:
    return [tuple(row) for row in found.assets.orderBy("asset_idx").collect()]


def rejects_of(found) -> list[tuple]:
    return sorted((row["reason"], Path(row["source"]).name) for row in found.rejects.collect())


def id_types(found) -> tuple[str, str]:
    schema = found.views.schema
    return schema["user_id"].dataType.simpleString(), schema["asset_id"].dataType.simpleString()


def assert_counts_add_up(found, rejects: list[tuple]) -> None:
    summary = found.summary
    assert summary["rows"] == summary["valid"] + summary["rejected"]
    assert summary["rejected"] == sum(summary["rejected_by_reason"].values())
    assert len(rejects) == summary["rejected"] + summary["metadata_rejected"]


def test_ml_100k_reads_latin1_titles_genre_flags_and_rejects_short_lines(spark, tmp_path: Path) -> None:
    write(
        tmp_path / "u.data",
        [
            "1\t10\t5\t881250949",
            "1\t10\t3\t881250000",  # the same user and film again, earlier: one view at this time
            "2\t20\t4\t881250100",
            "3\t20\t2",  # too few fields
            "x\t10\t1\t881250200",
            "4\t99\t1\t881250300",  # not in u.item
            "",
        ],
    )
    comedy_western = ["0"] * 5 + ["1"] + ["0"] * 12 + ["1"]
    action = ["0", "1"] + ["0"] * 17
    write(
        tmp_path / "u.item",
        [
            "10|Café (1995)|01-Jan-1995||http://x/10|" + "|".join(comedy_western),
            "20|Heat (1995)|01-Jan-1995||http://x/20|" + "|".join(action),
            "30|Short line|01-Jan-1995",
        ],
        encoding="latin-1",
    )

    found = ingest(spark, str(tmp_path), rules=STRICT)

    assert views_of(found) == [(1, 10, 881250000), (2, 20, 881250100)]
    assert id_types(found) == ("bigint", "bigint")
    assert assets_of(found) == [(0, 10, 1, "Café (1995)", ["Comedy", "Western"]), (1, 20, 1, "Heat (1995)", ["Action"])]
    rejects = rejects_of(found)
    assert rejects == [
        ("asset_id not in metadata", tmp_path.name),
        ("malformed user_id: not a 64-bit integer: x", tmp_path.name),
        ("unparseable line: expected 4 fields, found 3", tmp_path.name),
        ("unparseable metadata line: expected 24 fields, found 3", "u.item"),
    ]
    assert found.summary == {
        "source": str(tmp_path),
        "layout": "ml-100k",
        "id_type": "int",
        "rows": 6,
        "valid": 3,
        "rejected": 3,
        "rejected_by_reason": {"asset_id not in metadata": 1, "malformed user_id": 1, "unparseable line": 1},
        "metadata": str(tmp_path / "u.item"),
        "metadata_rows": 3,
        "metadata_rejected": 1,
        "views_without_metadata": 0,
        "assets_without_metadata": 0,
    }
    assert_counts_add_up(found, rejects)


def test_ml_1m_reads_double_colon_files(spark, tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", ["1::10::5::978300760", "2::10::4::978300000", "1::20::3::978301000", "3::20"])
    write(
        tmp_path / "movies.dat",
        [
            "10::Amélie (2001)::Comedy|Romance",
            "20::Toy Story (1995)::Animation|Children's|Comedy",
            "30::Broken",
        ],
        encoding="latin-1",
    )

    found = ingest(spark, str(tmp_path))

    assert views_of(found) == [(1, 10, 978300760), (1, 20, 978301000), (2, 10, 978300000)]
    assert assets_of(found) == [
        (0, 10, 2, "Amélie (2001)", ["Comedy", "Romance"]),
        (1, 20, 1, "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    ]
    rejects = rejects_of(found)
    assert rejects == [
        ("unparseable line: expected 4 fields, found 2", tmp_path.name),
        ("unparseable metadata line: expected 3 fields, found 2", "movies.dat"),
    ]
    assert (found.summary["layout"], found.summary["rows"], found.summary["valid"]) == ("ml-1m", 4, 3)
    assert_counts_add_up(found, rejects)


def test_ml_latest_reads_crlf_quoted_titles_and_no_genres(spark, tmp_path: Path) -> None:
    write(
        tmp_path / "ratings.csv",
        [
            "userId,movieId,rating,timestamp",
            "1,11,4.0,964982703",
            "1,7789,3.5,964981247",
            "2,11,5.0,964983000",
            "2,11,1.0,964980000",
            "3,11",  # too few fields
        ],
        newline="\r\n",
    )
    write(
        tmp_path / "movies.csv",
        [
            "movieId,title,genres",
            '11,"American President, The (1995)",Comedy|Drama|Romance',
            '7789,"11\'09""01 - September 11 (2002)",(no genres listed)',
            "12,Unquoted",
        ],
        newline="\r\n",
    )

    found = ingest(spark, str(tmp_path))

    assert views_of(found) == [(1, 11, 964982703), (1, 7789, 964981247), (2, 11, 964980000)]
    assert assets_of(found) == [
        (0, 11, 2, "American President, The (1995)", ["Comedy", "Drama", "Romance"]),
        (1, 7789, 1, "11'09\"01 - September 11 (2002)", []),
    ]
    rejects = rejects_of(found)
    assert rejects == [
        ("unparseable line: expected 4 fields, found 2", tmp_path.name),
        ("unparseable metadata line: expected movieId,title,genres", "movies.csv"),
    ]
    assert (found.summary["rows"], found.summary["valid"]) == (5, 4)
    assert_counts_add_up(found, rejects)


@pytest.mark.skipif(not ML_LATEST_SMALL.is_dir(), reason="the real ml-latest-small is not on this machine")
def test_real_ml_latest_small_reads_every_rating(spark) -> None:
    found = ingest(spark, str(ML_LATEST_SMALL))

    summary = found.summary
    assert (summary["layout"], summary["id_type"], summary["rows"]) == ("ml-latest", "int", 100836)
    assert (summary["valid"], summary["rejected"], summary["metadata_rejected"]) == (100836, 0, 0)
    titles = found.metadata.where(F.col("asset_id").isin(11, 7789, 122888)).select("asset_id", "title", "genres")
    assert sorted((str(row[0]), *row[1:]) for row in titles.collect()) == [
        ("11", "American President, The (1995)", ["Comedy", "Drama", "Romance"]),
        ("122888", "Ben-hur (2016)", []),
        ("7789", "11'09\"01 - September 11 (2002)", ["Drama"]),
    ]


def test_csv_keeps_string_ids_parses_each_time_form_and_checks_metadata(spark, tmp_path: Path) -> None:
    events = write(
        tmp_path / "events.csv",
        [
            "user_id,asset_id,viewed_at",
            "u1,film-a,1700000000",
            "u1,film-a,2023-11-14T00:00:00Z",  # earlier than the line above: this time is kept
            "u2,film-b,",
            "u2,007,2024-01-01T00:00:00+00:00",
            ",film-a,1",
            "u3,film-a,not a time",
            "u4,film-a,99999999999999",  # Unix seconds past the year 2262
            "u3,film-z,5",
        ],
        newline="\r\n",
    )
    metadata = write(
        tmp_path / "assets.csv",
        [
            "asset_id,title,genres",
            'film-a,"A, the film",Drama|Comedy',
            "film-b,B,",
            "007,Bond,Action",
        ],
    )

    found = ingest(spark, events, metadata, rules=STRICT)

    assert views_of(found) == [
        ("u1", "film-a", seconds("2023-11-14T00:00:00")),
        ("u2", "007", seconds("2024-01-01T00:00:00")),
        ("u2", "film-b", None),
    ]
    assert id_types(found) == ("string", "string")
    assert assets_of(found) == [
        (0, "007", 1, "Bond", ["Action"]),
        (1, "film-a", 1, "A, the film", ["Drama", "Comedy"]),
        (2, "film-b", 1, "B", []),
    ]
    rejects = rejects_of(found)
    assert rejects == [
        ("asset_id not in metadata", "events.csv"),
        ("malformed viewed_at: not a time: not a time", "events.csv"),
        ("user_id is null", "events.csv"),
        ("viewed_at in milliseconds: Unix seconds expected (divide by 1000): 99999999999999", "events.csv"),
    ]
    assert (found.summary["rows"], found.summary["valid"], found.summary["id_type"]) == (8, 4, "string")
    assert_counts_add_up(found, rejects)


def test_csv_detects_integer_ids_per_column(spark, tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", ["user_id,asset_id", "7,a", "7,a", " 8 ,b"])
    padded = write(tmp_path / "padded.csv", ["user_id,asset_id", "007,1"])

    found = ingest(spark, events, id_type="auto")
    as_int = ingest(spark, events, id_type="int")

    assert found.summary["id_type"] == "user_id int, asset_id string"
    assert views_of(found) == [(7, "a", None), (8, "b", None)]
    assert as_int.summary["rejected_by_reason"] == {"malformed asset_id": 3}
    assert ingest(spark, padded).summary["id_type"] == "user_id string, asset_id int"


def test_parquet_and_delta_keep_each_column_type_and_read_metadata(spark, tmp_path: Path) -> None:
    when = dt.datetime(2024, 5, 1, 12, 0, 0)
    schema = "user_id int, asset_id string, viewed_at timestamp"
    rows = [(1, "a", when), (1, "a", when + dt.timedelta(days=1)), (2, "b", None), (None, "b", when)]
    spark.createDataFrame(rows, schema).write.parquet(str(tmp_path / "events"))
    spark.createDataFrame(
        [(1, 10, 0), (2, 10, 3600), (2, 11, 60)], "user_id long, asset_id long, viewed_at long"
    ).write.format("delta").save(str(tmp_path / "delta"))
    spark.createDataFrame([(10, "Ten", ["Drama"])], "asset_id long, title string, genres array<string>").write.format(
        "delta"
    ).save(str(tmp_path / "meta"))

    mixed = ingest(spark, str(tmp_path / "events"))
    delta = ingest(spark, str(tmp_path / "delta"), str(tmp_path / "meta"), rules=STRICT)

    assert id_types(mixed) == ("bigint", "string")
    assert mixed.summary["id_type"] == "user_id int, asset_id string"
    first = mixed.views.where(F.col("user_id") == 1).first()
    assert (first["asset_id"], first["viewed_at"]) == ("a", when)
    assert mixed.summary["rejected_by_reason"] == {"user_id is null": 1}
    assert views_of(delta) == [(1, 10, 0), (2, 10, 3600)]
    assert delta.summary["rejected_by_reason"] == {"asset_id not in metadata": 1}
    assert [tuple(row) for row in delta.metadata.select("asset_id", "title", "genres").collect()] == [
        (10, "Ten", ["Drama"])
    ]


BAD_INPUTS = {
    "missing.csv": ("no such file or folder", None),
    "empty.csv": ("the file is empty (no header, no rows)", ""),
    "header_only.csv": ("no rows (the input is empty)", "user_id,asset_id\n"),
    "wrong_columns.csv": ("missing column(s) asset_id; found user_id, film", "user_id,film\n1,2\n"),
    "not_gzip.csv.gz": ("Spark cannot read it: java.io.IOException: not a gzip file", "user_id,asset_id\n1,2\n"),
    "not_parquet.parquet": ("Spark cannot read it", "this is not parquet"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_unreadable_files_stop_with_the_path_and_the_problem(spark, tmp_path: Path, name: str) -> None:
    problem, text = BAD_INPUTS[name]
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(InputError) as error:
        ingest(spark, str(tmp_path / name))
    assert f"events at {tmp_path / name}: {problem}" in str(error.value)


def test_wrong_parquet_schemas_stop_with_the_column_and_its_type(spark, tmp_path: Path) -> None:
    frames = {
        "no_asset": spark.createDataFrame([(1, 2)], "user_id long, film long"),
        "double_ids": spark.createDataFrame([(1.0, 2)], "user_id double, asset_id long"),
        "struct_ids": spark.createDataFrame([((1,), 2)], "user_id struct<id: long>, asset_id long"),
        "empty": spark.createDataFrame([], "user_id long, asset_id long"),
    }
    for name, frame in frames.items():
        frame.coalesce(1).write.parquet(str(tmp_path / name))
    problems = {
        "no_asset": "missing column(s) asset_id; found user_id, film",
        "double_ids": "column user_id has type double; expected integers or strings",
        "struct_ids": "column user_id has type struct<id:bigint>; expected integers or strings",
        "empty": "no rows (the input is empty)",
    }
    for name, problem in problems.items():
        with pytest.raises(InputError) as error:
            ingest(spark, str(tmp_path / name))
        assert f"events at {tmp_path / name}: {problem}" in str(error.value)


def test_metadata_with_no_usable_row_stops(spark, tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", ["user_id,asset_id", "1,2"])
    metadata = write(tmp_path / "assets.csv", ["asset_id,title", "m1,One"])

    with pytest.raises(InputError) as error:
        ingest(spark, events, metadata)

    assert str(error.value) == (
        f"metadata at {metadata}: none of the 1 rows is usable "
        "(e.g. malformed metadata asset_id: not a 64-bit integer: m1); the events' asset ids are integers"
    )


def test_null_tokens_are_missing_values_and_the_list_is_configurable(spark, tmp_path: Path) -> None:
    lines = ["user_id,asset_id,viewed_at", "1,10,NULL", "NULL,10,0", "\\N,10,0", "NaN,11,0", "None,11,0", ",11,0"]
    events = write(tmp_path / "events.csv", [*lines, "nan,12,0", "2,NULL,0", "3,12,0", "missing,12,0"])
    found = ingest(spark, events)
    assert found.summary["id_type"] == "user_id string, asset_id int"  # "missing" is a string id
    assert found.summary["rejected_by_reason"] == {"user_id is null": 6, "asset_id is null": 1}
    assert views_of(found) == [("1", 10, None), ("3", 12, 0), ("missing", 12, 0)]
    own = ingest(spark, events, rules=ReadRules(null_tokens=("missing",)))
    assert own.summary["rejected_by_reason"] == {"user_id is null": 2, "malformed viewed_at": 1}  # "" and "missing"
    assert own.summary["id_type"] == "string"  # "NULL" is an asset id there


def test_integral_numbers_in_an_id_column_are_integers(spark, tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", ["user_id,asset_id", "1.0,10", "1,10", "2.00,11.0", "-3.0,12"])
    found = ingest(spark, events)
    assert id_types(found) == ("bigint", "bigint") and found.summary["id_type"] == "int"
    assert views_of(found) == [(-3, 12, None), (1, 10, None), (2, 11, None)]  # "1.0" and "1" are one user
    mixed = write(tmp_path / "mixed.csv", ["user_id,asset_id", "1.5,10", "2,10"])
    assert ingest(spark, mixed).summary["id_type"] == "user_id string, asset_id int"  # 1.5 is not integral


def test_quoted_fields_may_span_lines(spark, tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", ["user_id,asset_id", "1,10", "2,11"])
    metadata = write(
        tmp_path / "assets.csv", ["asset_id,title,genres", '10,"Two', 'lines",Drama', '11,"One line",Comedy']
    )
    found = ingest(spark, events, metadata)
    assert assets_of(found) == [(0, 10, 1, "Two\nlines", ["Drama"]), (1, 11, 1, "One line", ["Comedy"])]
    assert found.summary["metadata_rejected"] == 0 and found.summary["rejected"] == 0


def test_views_of_assets_the_metadata_lacks_are_kept_unless_strict(spark, tmp_path: Path) -> None:
    events = write(tmp_path / "events.csv", ["user_id,asset_id", "1,10", "2,10", "1,99", "2,99", "3,98"])
    metadata = write(tmp_path / "assets.csv", ["asset_id,title,genres", "10,Ten,Drama"])
    found = ingest(spark, events, metadata)
    assert found.summary["rejected"] == 0 and len(views_of(found)) == 5
    assert (found.summary["views_without_metadata"], found.summary["assets_without_metadata"]) == (3, 2)
    assert assets_of(found) == [(0, 10, 2, "Ten", ["Drama"]), (1, 98, 1, None, None), (2, 99, 2, None, None)]
    strict = ingest(spark, events, metadata, rules=STRICT)
    assert strict.summary["rejected_by_reason"] == {"asset_id not in metadata": 3} and strict.summary["valid"] == 2
