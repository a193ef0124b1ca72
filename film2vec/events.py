"""View events in: readers for Delta, Parquet, CSV and the MovieLens layouts, validation and rejects.

Every reader produces the same raw frame (user_id, asset_id, viewed_at, line) plus optional metadata
(asset_id, title, genres). Validation then sorts each raw row into a clean view or a reject with a
reason, so nothing is dropped silently; a repeated (user, asset) is merged into its earliest view.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.window import Window

ML_100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
INTEGER_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
ID_PATTERN = r"^-?[0-9]{1,18}$"
MAX_STRING_ID = 512


class InputError(ValueError):
    """Input that film2vec cannot use; the message names the path and the problem."""


@dataclass(frozen=True)
class RawInput:
    """What a reader found: raw events, optional metadata, and how ids arrive."""

    events: DataFrame
    metadata: DataFrame | None
    layout: str
    path: str
    id_type: str  # "int", "string" or "auto" (CSV text, decided from the values)


@dataclass(frozen=True)
class Ingested:
    """Clean views (one per distinct user and asset), the asset index, and the rejected rows."""

    views: DataFrame
    assets: DataFrame
    rejects: DataFrame
    summary: dict


def _exists(path: str) -> bool:
    return "://" in path or path.startswith("dbfs:") or os.path.exists(path)


def detect_layout(path: str) -> str:
    """delta, parquet, csv, ml-100k, ml-1m or ml-latest, from what the path holds."""
    if not _exists(path):
        raise InputError(f"events not found: {path} does not exist")
    local = Path(path)
    if local.is_dir():
        if (local / "_delta_log").is_dir():
            return "delta"
        if (local / "u.data").is_file():
            return "ml-100k"
        if (local / "ratings.dat").is_file():
            return "ml-1m"
        if (local / "ratings.csv").is_file():
            return "ml-latest"
        names = [p.name for p in local.iterdir() if not p.name.startswith((".", "_"))]
        if names and all(n.endswith(".parquet") or n.startswith("part-") and ".parquet" in n for n in names):
            return "parquet"
        if names and all(n.endswith(".csv") for n in names):
            return "csv"
        raise InputError(
            f"events at {path}: cannot tell the format of this folder; expected a Delta table (_delta_log/), "
            "Parquet or CSV files, or a MovieLens folder (u.data, ratings.dat or ratings.csv)"
        )
    if path.endswith(".csv"):
        return "csv"
    if path.endswith(".parquet"):
        return "parquet"
    if "://" in path or path.startswith("dbfs:"):
        return "delta"
    raise InputError(f"events at {path}: unknown file type; expected .csv, .parquet or a folder")


def _read_lines(spark: SparkSession, path: str, encoding: str = "UTF-8") -> DataFrame:
    """Whole lines of a delimited file (no header, no quoting), so short lines can be rejected with reason."""
    if encoding == "UTF-8":
        lines = spark.read.text(path)
    else:  # the text reader knows only UTF-8; the CSV reader with an unused separator reads other encodings
        lines = spark.read.csv(path, sep="\u0001", quote="", header=False, encoding=encoding)
    line = F.rtrim(F.col(lines.columns[0]))
    return lines.select(line.alias("line")).where(F.length("line") > 0)


def _split_events(lines: DataFrame, separator: str) -> DataFrame:
    parts = F.split("line", separator)
    enough = F.size(parts) >= 4
    return lines.select(
        F.when(enough, parts[0]).alias("user_id"),
        F.when(enough, parts[1]).alias("asset_id"),
        F.when(enough, parts[3]).alias("viewed_at"),
        F.when(~enough, F.lit("unparseable line: expected 4 fields")).alias("line_error"),
        "line",
    )


def _genre_list(text: Column, separator: str) -> Column:
    genres = F.split(text, separator)
    return F.filter(genres, lambda g: (F.length(g) > 0) & (g != "(no genres listed)"))


def read_movielens(spark: SparkSession, folder: str, layout: str) -> RawInput:
    """Ratings (every rating counts as a view) and movies of a MovieLens folder."""
    root = Path(folder)
    if layout == "ml-latest":
        ratings = spark.read.csv(str(root / "ratings.csv"), header=True)
        _require_columns(ratings, ("userId", "movieId"), str(root / "ratings.csv"))
        events = ratings.select(
            F.col("userId").alias("user_id"),
            F.col("movieId").alias("asset_id"),
            F.col("timestamp").alias("viewed_at") if "timestamp" in ratings.columns else F.lit(None),
            F.lit(None).cast("string").alias("line_error"),
            F.concat_ws(",", *ratings.columns).alias("line"),
        )
        metadata = None
        if (root / "movies.csv").is_file():
            movies = spark.read.csv(str(root / "movies.csv"), header=True, quote='"', escape='"')
            metadata = movies.select(
                F.col("movieId").alias("asset_id"), "title", _genre_list(F.col("genres"), r"\|").alias("genres")
            )
    elif layout == "ml-1m":
        events = _split_events(_read_lines(spark, str(root / "ratings.dat")), "::")
        metadata = None
        if (root / "movies.dat").is_file():
            movies = _read_lines(spark, str(root / "movies.dat"), encoding="ISO-8859-1")
            parts = F.split("line", "::")
            metadata = movies.where(F.size(parts) >= 3).select(
                parts[0].alias("asset_id"), parts[1].alias("title"), _genre_list(parts[2], r"\|").alias("genres")
            )
    else:
        events = _split_events(_read_lines(spark, str(root / "u.data")), "\t")
        metadata = None
        if (root / "u.item").is_file():
            movies = _read_lines(spark, str(root / "u.item"), encoding="ISO-8859-1")
            parts = F.split("line", r"\|")
            flags = [(parts[5 + i], name) for i, name in enumerate(ML_100K_GENRES)]
            genres = F.filter(F.array(*[F.when(flag == "1", F.lit(name)) for flag, name in flags]), F.isnotnull)
            metadata = movies.where(F.size(parts) >= 5 + len(ML_100K_GENRES)).select(
                parts[0].alias("asset_id"), parts[1].alias("title"), genres.alias("genres")
            )
    return RawInput(events, metadata, layout, folder, "int")


def _require_columns(frame: DataFrame, columns: tuple[str, ...], path: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns) or 'none'}")


def _check_id_type(frame: DataFrame, column: str, path: str) -> None:
    kind = frame.schema[column].dataType
    if not isinstance(kind, (*INTEGER_TYPES, T.StringType)):
        raise InputError(f"{path}: column {column} has type {kind.simpleString()}; ids must be integers or strings")


def read_table(spark: SparkSession, path: str, layout: str, id_type: str = "auto") -> RawInput:
    """Events from a Delta table, Parquet or a CSV file with columns user_id, asset_id[, viewed_at]."""
    if layout == "delta":
        frame = spark.read.format("delta").load(path)
    elif layout == "parquet":
        frame = spark.read.parquet(path)
    else:
        frame = spark.read.csv(path, header=True)
    _require_columns(frame, ("user_id", "asset_id"), path)
    viewed_at = F.col("viewed_at") if "viewed_at" in frame.columns else F.lit(None).cast("timestamp")
    if layout == "csv":
        kind = id_type
    else:
        for column in ("user_id", "asset_id"):
            _check_id_type(frame, column, path)
        if "viewed_at" in frame.columns:
            seen = frame.schema["viewed_at"].dataType
            if not isinstance(
                seen,
                (
                    *INTEGER_TYPES,
                    T.TimestampType,
                    T.TimestampNTZType,
                    T.DateType,
                    T.DoubleType,
                    T.FloatType,
                    T.StringType,
                ),
            ):
                raise InputError(
                    f"{path}: column viewed_at has type {seen.simpleString()}; "
                    "expected a timestamp, a date or Unix seconds"
                )
        kinds = {isinstance(frame.schema[c].dataType, INTEGER_TYPES) for c in ("user_id", "asset_id")}
        kind = "mixed" if len(kinds) > 1 else ("int" if kinds == {True} else "string")
    columns = [c for c in frame.columns if c in ("user_id", "asset_id", "viewed_at")]
    events = frame.select(
        "user_id",
        "asset_id",
        viewed_at.alias("viewed_at"),
        F.lit(None).cast("string").alias("line_error"),
        F.to_json(F.struct(*columns)).alias("line"),
    )
    return RawInput(events, None, layout, path, kind)


def read_metadata(spark: SparkSession, path: str) -> DataFrame:
    """Asset metadata (asset_id, title, genres) from Delta, Parquet or CSV (genres separated by '|')."""
    layout = detect_layout(path)
    if layout in ("ml-100k", "ml-1m", "ml-latest"):
        metadata = read_movielens(spark, path, layout).metadata
        if metadata is None:
            raise InputError(f"metadata at {path}: this MovieLens folder has no movies file")
        return metadata
    if layout == "delta":
        frame = spark.read.format("delta").load(path)
    elif layout == "parquet":
        frame = spark.read.parquet(path)
    else:
        frame = spark.read.csv(path, header=True, quote='"', escape='"')
    _require_columns(frame, ("asset_id",), path)
    title = F.col("title").cast("string") if "title" in frame.columns else F.lit(None).cast("string")
    genres = F.lit(None).cast("array<string>")
    if "genres" in frame.columns:
        kind = frame.schema["genres"].dataType
        genres = F.col("genres") if isinstance(kind, T.ArrayType) else _genre_list(F.col("genres"), r"\|")
    return frame.select("asset_id", title.alias("title"), genres.cast("array<string>").alias("genres"))


def read_raw(spark: SparkSession, path: str, id_type: str = "auto") -> RawInput:
    """Any supported events source, its layout detected."""
    layout = detect_layout(path)
    if layout.startswith("ml-"):
        return read_movielens(spark, path, layout)
    return read_table(spark, path, layout, id_type)


def _decide_id_type(raw: RawInput) -> str:
    """For CSV text ids: int when every non-blank id of both columns is an integer, else string."""
    if raw.id_type != "auto":
        return raw.id_type
    ids = raw.events.select(F.trim("user_id").alias("u"), F.trim("asset_id").alias("a"))
    not_integer = F.sum(
        (F.col("u").isNotNull() & (F.col("u") != "") & ~F.col("u").rlike(ID_PATTERN)).cast("int")
        + (F.col("a").isNotNull() & (F.col("a") != "") & ~F.col("a").rlike(ID_PATTERN)).cast("int")
    )
    return "string" if (ids.select(not_integer).first()[0] or 0) > 0 else "int"


def _clean_id(column: str, id_type: str) -> tuple[Column, Column]:
    """(parsed id, reason or null) for one id column."""
    raw = F.col(column)
    if id_type == "int":
        text = F.trim(raw.cast("string"))
        reason = F.when(raw.isNull() | (text == ""), F.lit(f"{column} is null")).when(
            ~text.rlike(ID_PATTERN), F.concat(F.lit(f"malformed {column}: not an integer: "), text)
        )
        return F.when(reason.isNull(), text.cast("long")), reason
    text = F.trim(raw.cast("string"))
    reason = (
        F.when(raw.isNull() | (text == ""), F.lit(f"{column} is null or blank"))
        .when(F.length(text) > MAX_STRING_ID, F.lit(f"malformed {column}: longer than {MAX_STRING_ID} characters"))
        .when(text.rlike(r"[\x00-\x1f\x7f]"), F.lit(f"malformed {column}: contains control characters"))
    )
    return F.when(reason.isNull(), text), reason


def _parse_time(raw: DataFrame) -> tuple[Column, Column]:
    """(viewed_at as timestamp, reason or null): timestamps, dates, Unix seconds or ISO text."""
    kind = raw.schema["viewed_at"].dataType
    column = F.col("viewed_at")
    if isinstance(kind, (T.TimestampType, T.TimestampNTZType, T.DateType)):
        parsed = column.cast("timestamp")
    elif isinstance(kind, (*INTEGER_TYPES, T.DoubleType, T.FloatType, T.NullType)):
        parsed = F.timestamp_seconds(column.cast("double"))
    else:
        text = F.trim(column)
        parsed = F.when(
            text.rlike(r"^-?[0-9]+(\.[0-9]+)?$"), F.timestamp_seconds(F.try_cast(text, "double"))
        ).otherwise(F.try_to_timestamp(text))
    reason = F.when(column.isNotNull() & parsed.isNull(), F.lit("malformed viewed_at: not a time"))
    return parsed, reason


def validate(raw: RawInput, metadata: DataFrame | None) -> tuple[DataFrame, DataFrame, str]:
    """Split raw rows into clean events and rejects (reason, line, source); also return the id type."""
    id_type = _decide_id_type(raw)
    if id_type == "mixed":
        id_type = "string"
    user, user_reason = _clean_id("user_id", id_type)
    asset, asset_reason = _clean_id("asset_id", id_type)
    viewed_at, time_reason = _parse_time(raw.events)
    checked = raw.events.select(
        user.alias("user_id"),
        asset.alias("asset_id"),
        viewed_at.alias("viewed_at"),
        F.coalesce("line_error", user_reason, asset_reason, time_reason).alias("reason"),
        "line",
    )
    if metadata is not None:
        known = metadata.select(F.col("asset_id").alias("known_asset"), F.lit(True).alias("in_metadata"))
        checked = checked.join(F.broadcast(known), checked.asset_id == known.known_asset, "left").select(
            "user_id",
            "asset_id",
            "viewed_at",
            "line",
            F.coalesce("reason", F.when(F.col("in_metadata").isNull(), F.lit("asset_id not in metadata"))).alias(
                "reason"
            ),
        )
    checked = checked.persist()
    clean = checked.where(F.col("reason").isNull()).select("user_id", "asset_id", "viewed_at")
    rejects = checked.where(F.col("reason").isNotNull()).select("reason", "line", F.lit(raw.path).alias("source"))
    return clean, rejects, id_type


def typed_metadata(metadata: DataFrame, id_type: str, path: str) -> DataFrame:
    """Metadata with asset ids of the events' type; unparseable ids stop with a message."""
    asset, reason = _clean_id("asset_id", id_type)
    checked = metadata.select(asset.alias("asset_id"), reason.alias("reason"), "title", "genres")
    bad = checked.where(F.col("reason").isNotNull()).limit(3).collect()
    if bad:
        raise InputError(f"metadata at {path}: {bad[0]['reason']} (and possibly more rows)")
    return checked.drop("reason").dropDuplicates(["asset_id"])


def index_assets(views: DataFrame, metadata: DataFrame | None) -> DataFrame:
    """Dense asset indices 0..n-1 in asset id order, with per-asset view counts and metadata."""
    counts = views.groupBy("asset_id").agg(F.count("*").alias("views"))
    indexed = counts.withColumn("asset_idx", (F.row_number().over(Window.orderBy("asset_id")) - 1).cast("int"))
    if metadata is None:
        return indexed.select(
            "asset_idx",
            "asset_id",
            "views",
            F.lit(None).cast("string").alias("title"),
            F.lit(None).cast("array<string>").alias("genres"),
        )
    return indexed.join(metadata, "asset_id", "left").select("asset_idx", "asset_id", "views", "title", "genres")


def ingest(spark: SparkSession, events_path: str, metadata_path: str | None = None, id_type: str = "auto") -> Ingested:
    """Read and validate events (and metadata): clean views, asset index, rejects, and a summary of counts.

    Raises InputError for a missing path, a wrong schema, an empty input or input without a single
    valid view.
    """
    raw = read_raw(spark, events_path, id_type)
    metadata = raw.metadata
    if metadata_path:
        metadata = read_metadata(spark, metadata_path)
    if raw.events.limit(1).count() == 0:
        raise InputError(f"events at {events_path}: no rows")
    clean, rejects, id_type = validate(raw, None)
    if metadata is not None:
        metadata = typed_metadata(metadata, id_type, metadata_path or events_path)
        clean, rejects, id_type = validate(raw, metadata)
    views = clean.groupBy("user_id", "asset_id").agg(F.min("viewed_at").alias("viewed_at"))
    totals = clean.agg(F.count("*").alias("valid")).first()["valid"]
    reasons = {
        r["reason_kind"]: r["rows"]
        for r in rejects.groupBy(F.regexp_extract("reason", r"^[^:]*", 0).alias("reason_kind"))
        .agg(F.count("*").alias("rows"))
        .collect()
    }
    summary = {
        "source": events_path,
        "layout": raw.layout,
        "id_type": id_type,
        "rows": totals + sum(reasons.values()),
        "rejected": sum(reasons.values()),
        "rejected_by_reason": reasons,
        "valid": totals,
    }
    return Ingested(views, index_assets(views, metadata), rejects, summary)
